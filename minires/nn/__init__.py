"""``minires.nn``: the functional API (``minires.nn.functional``)."""

from . import functional  # noqa: F401
