"""``mr.backends``: ``cudnn`` and ``mps``, the flags and questions that training scripts set and ask
(``torch.backends.cudnn.benchmark = True``, ``torch.backends.mps.is_available()``).

minires calls neither cuDNN nor Metal: its convolutions are im2col and a matrix product (NumPy on the CPU,
CuPy on the GPU). So the cuDNN flags are accepted and kept, and change nothing: ``benchmark`` picks no
algorithm, and minires's results do not depend on ``deterministic`` (its GPU kernels are the same every
run). ``import minires.backends.cudnn as cudnn`` works, as kuangliu's pytorch-cifar imports it.
"""

from __future__ import annotations

import sys
from types import ModuleType


class _CudnnModule(ModuleType):
    """``mr.backends.cudnn``: the flags of ``torch.backends.cudnn``, kept and without effect."""

    enabled: bool = True
    benchmark: bool = False
    deterministic: bool = False
    allow_tf32: bool = True

    def is_available(self) -> bool:
        """False: minires does not call cuDNN."""
        return False

    def version(self) -> None:
        """None, as torch answers without cuDNN."""
        return None


class _MpsModule(ModuleType):
    """``mr.backends.mps``: Apple's Metal backend, which minires does not have."""

    def is_available(self) -> bool:
        return False

    def is_built(self) -> bool:
        return False


cudnn = _CudnnModule(f"{__name__}.cudnn", _CudnnModule.__doc__)
mps = _MpsModule(f"{__name__}.mps", _MpsModule.__doc__)
sys.modules[cudnn.__name__] = cudnn  # so that `import minires.backends.cudnn as cudnn` works
sys.modules[mps.__name__] = mps
