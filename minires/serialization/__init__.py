"""``mr.save`` and ``mr.load``: checkpoints in three formats, none of them read by unpickling code.

    mr.save(model.state_dict(), "resnet18.pth")        # PyTorch's zip format: torch.load reads it
    model.load_state_dict(mr.load("resnet18.pth"))     # a file torch.save wrote, read without torch
    mr.save(model.state_dict(), "resnet18.safetensors")
    mr.save({"model": ..., "optimizer": ..., "epoch": 3}, "checkpoint.npz")

``save`` picks the format by the file's extension:

    .pt, .pth     PyTorch's zip archive (``torch_zip``), what ``torch.save`` writes: ``torch.load(path)``
                  (with its default ``weights_only=True``) gives torch tensors, so
                  ``torch_model.load_state_dict(torch.load(path))`` takes a minires model's weights
    .safetensors  Hugging Face's safetensors (``safetensors_file``), a flat dict of arrays; needs the
                  ``safetensors`` package, ``pip install 'minires[interop]'``
    anything else minires's own ``.npz`` with a JSON manifest (``npz``): every structure a checkpoint has,
                  bit for bit, Tensors and Parameters included; what the training example writes

``load`` recognizes the format by the file's first bytes, whatever its name (``sniff``), so a
``pytorch_model.bin`` or a minires checkpoint named ``.pt`` by an older minires reads as what it is.
A file it cannot read (a legacy PyTorch pickle, a plain pickle, an HDF5 file, an ``.npz`` of someone
else's, ...) raises ``ValueError`` naming the path, what the file is and what to do; a pickle that asks
for a global off the allow-list raises ``safe_pickle.UnsafePickleError`` (a ``pickle.UnpicklingError``,
as torch's ``weights_only`` refusal is) naming it.

What comes back: from ``.npz`` exactly what was saved (see ``npz``); from a PyTorch or safetensors file,
every tensor as a NumPy array that owns its memory, what ``Module.state_dict()`` holds and
``load_state_dict`` takes, in the dicts, lists, tuples and numbers around it.

Every format is written atomically (``minires.fileio.atomic_open``): a temporary file beside ``path``,
renamed over it once complete, so ``path`` holds the old file or the whole new one.

``path`` may also be an open binary file object (``io.BytesIO``, a file opened ``"wb"``/``"rb"``), as
torch.save and torch.load take one: ``save`` writes at its position (the format by its ``.name``'s
extension where it has one, else minires's own), and ``load`` reads one checkpoint from its position to
its end. The caller owns the stream, so such a write is not atomic.
"""

from __future__ import annotations

import contextlib
import io
import os
import zipfile
from typing import IO, Any

import numpy as np

from .. import safe_pickle
from ..fileio import atomic_open
from ..nn.parameter import Parameter
from ..tensor import Tensor
from . import npz, safetensors_file, sniff, torch_zip
from .npz import FORMAT, MANIFEST_KEY, VERSION

__all__ = ["FORMAT", "MANIFEST_KEY", "VERSION", "load", "save"]

PathLike = str | os.PathLike
TORCH_SUFFIXES = (".pt", ".pth")
SAFETENSORS_SUFFIX = ".safetensors"


def format_for(path: PathLike) -> str:
    """``"torch"``, ``"safetensors"`` or ``"minires"``: the format ``save`` writes to ``path``."""
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix in TORCH_SUFFIXES:
        return "torch"
    return "safetensors" if suffix == SAFETENSORS_SUFFIX else "minires"


def save(obj: Any, path: PathLike | IO[bytes]) -> None:
    """Write ``obj`` to ``path`` atomically, in the format its extension names (see the module docstring);
    or to an open binary file object, at its position.

    Raises ``TypeError`` naming where in ``obj`` a value sits that the format cannot hold (a set, an
    object array, a float dict key; for .safetensors anything but a flat dict of arrays); ``path`` is
    then left untouched."""
    stream = hasattr(path, "write")
    name = getattr(path, "name", "") if stream else os.fspath(path)
    name = name if isinstance(name, str) else ""  # a file opened from a descriptor is named by an int
    kind = format_for(name)

    def destination() -> contextlib.AbstractContextManager[IO[bytes]]:
        return contextlib.nullcontext(path) if stream else atomic_open(name, "wb")

    if kind == "torch":
        pickled, storages = torch_zip.encode(obj)  # every check before the file is touched
        with destination() as f:
            torch_zip.write(f, pickled, storages, torch_zip.archive_name_for(name))
    elif kind == "safetensors":
        content = safetensors_file.encode(obj)
        with destination() as f:
            f.write(content)
    else:
        arrays = npz.encode(obj)
        with destination() as f:
            npz.write_npz(f, arrays)


def load(path: PathLike | IO[bytes], map_location: Any = None, weights_only: bool | None = None) -> Any:
    """Read a checkpoint written by ``save``, by ``torch.save`` (its zip format) or by safetensors, from
    ``path`` or an open binary file object (read from its position).

    ``map_location`` and ``weights_only`` are accepted as ``torch.load``'s, so that a tutorial's
    ``torch.load(PATH, map_location=device, weights_only=True)`` ports unchanged: a torch or safetensors
    file's tensors come back as CPU Tensors (Parameters as Parameters) whatever ``map_location`` says
    (``load_state_dict`` moves them to the model's device),
    and no file is ever unpickled with ``pickle.load``, as with ``weights_only=True`` (also when
    ``weights_only=False`` is passed).

    Raises ``ValueError`` naming ``path``, what the file is and what to do when it cannot be read
    (see ``sniff``), ``safe_pickle.UnsafePickleError`` when a PyTorch file's pickle asks for anything
    off the allow-list (naming it), ``ImportError`` for a .safetensors file without the safetensors
    package, and ``FileNotFoundError`` as ``open`` does."""
    stream = hasattr(path, "read")
    path = path if stream else os.fspath(path)
    # a stream's rest, from its position, read into a buffer of its own: the readers seek from its start
    with contextlib.nullcontext(io.BytesIO(path.read())) if stream else open(path, "rb") as fh:
        try:
            kind, prefix = sniff.identify(fh)
            fh.seek(0)
            if kind == "minires":
                return npz.read(fh)
            if kind == "safetensors":
                return _as_tensors(safetensors_file.read(fh.read()))
            return _as_tensors(_read_torch(fh, prefix))
        except sniff.BadFile as exc:
            raise ValueError(f"load: cannot load {path!r}: {exc}") from None
        except safe_pickle.UnsafePickleError as exc:
            raise safe_pickle.UnsafePickleError(f"load: cannot load {path!r}: {exc}") from None
        except ImportError as exc:
            raise ImportError(f"load: cannot load {path!r}: {exc}") from None


def _as_tensors(obj: Any, memo: dict[int, Tensor] | None = None) -> Any:
    """The arrays of a torch or safetensors file as CPU Tensors, as ``torch.load`` and
    ``safetensors.torch.load_file`` give torch tensors (an ``nn.Parameter`` as a Parameter), inside
    dicts, lists and tuples; one array met twice (one tensor under two names) is one Tensor."""
    memo = {} if memo is None else memo
    if isinstance(obj, np.ndarray):
        if id(obj) not in memo:
            if isinstance(obj, torch_zip.SavedParameter):
                memo[id(obj)] = Parameter(obj.view(np.ndarray), requires_grad=obj.requires_grad)
            else:
                memo[id(obj)] = Tensor._wrap(obj)
        return memo[id(obj)]
    if isinstance(obj, dict):  # in place: an OrderedDict keeps its attributes (a state_dict's _metadata)
        for key, value in obj.items():
            obj[key] = _as_tensors(value, memo)
        return obj
    if type(obj) is list:
        obj[:] = [_as_tensors(v, memo) for v in obj]
        return obj
    if type(obj) is tuple:
        return tuple(_as_tensors(v, memo) for v in obj)
    return obj


def _read_torch(fh: Any, prefix: str) -> Any:
    try:
        with zipfile.ZipFile(fh) as zf:
            return torch_zip.read(zf, prefix)
    except sniff.BadFile:
        raise
    except safe_pickle.UnsafePickleError as exc:  # a global: most often torch.save(model), not its state_dict
        if exc.global_name is None:
            raise
        raise safe_pickle.UnsafePickleError(
            f"{exc}. A PyTorch file minires reads holds tensors in dicts, lists and tuples, with strings and "
            "numbers, as torch.load(weights_only=True) reads them. To fix: with PyTorch, save the weights "
            "rather than the object, torch.save(model.state_dict(), path)"
        ) from None
    except Exception as exc:  # noqa: BLE001 - whatever a damaged or hostile pickle makes the unpickler raise
        raise sniff.BadFile(
            f"a PyTorch zip file whose data.pkl is damaged ({type(exc).__name__}: {exc}). To fix: write it "
            "again with torch.save, or fetch it again"
        ) from None
