"""``minires.utils``: tools around models (``summary``), as ``torchsummary``/``torchinfo`` give PyTorch."""

from .summary import LayerRow, Summary, summary
