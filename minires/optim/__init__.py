"""``minires.optim``: ``SGD``, ``Adam``, ``AdamW`` and the learning-rate schedulers (``lr_scheduler``), with
``torch.optim``'s update rules to the letter. Each optimizer's docstring states its rule."""

from . import lr_scheduler
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .sgd import SGD
