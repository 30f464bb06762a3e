"""``minires.utils``: tools around models and graphs: ``summary`` (as torchsummary/torchinfo give PyTorch)
and ``make_dot`` (the autograd graph as Graphviz DOT, as torchviz)."""

from .dot import DotGraph, GraphvizNotFoundError, make_dot
from .summary import LayerRow, Summary, summary
