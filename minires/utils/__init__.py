"""``minires.utils``: tools around models and graphs: ``summary`` (as torchsummary/torchinfo give PyTorch),
``make_dot`` (the autograd graph as Graphviz DOT, as torchviz), and ``data`` (torch.utils.data's names)."""

from . import data
from .dot import DotGraph, GraphvizNotFoundError, make_dot
from .summary import LayerRow, Summary, summary
