"""``minires.nn.utils``: helpers on parameters and their gradients, as ``torch.nn.utils``."""

from .clip_grad import clip_grad_norm_, clip_grad_value_
