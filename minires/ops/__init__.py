"""The ops, grouped by kind. Each op is a ``Function`` subclass (forward and backward on raw arrays, the
derivation in its docstring) with a lowercase wrapper that checks its arguments. Importing this package
installs the Tensor's operators and methods (``tensor_methods.install``)."""

from . import (
    activation,
    broadcast,
    conv,
    dropout,
    elementwise,
    linalg,
    loss,
    norm,
    pool,
    reduction,
    shape,
    tensor_methods,
)

tensor_methods.install()
