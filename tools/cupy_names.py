"""Write tests/cupy_namespace.json: the public names of the real CuPy, for the CuPy stand-in of the tests.

The stand-in (tests/cupy_standin.py) lets only names that the real CuPy has be reached, so that code which
calls a NumPy function CuPy lacks fails on a machine without a GPU. It reads this file, so CI needs no CuPy;
only whoever refreshes the file does:

    .venv/bin/pip install cupy-cuda13x     # importing cupy needs no GPU; allocating would
    .venv/bin/python tools/cupy_names.py

Each module section maps a name to its kind: "alias" (the very object NumPy has, such as ``float32`` or
``iinfo``), "ufunc", "module", "class", "function", or "lazy" (loaded by the module's ``__getattr__``, and
failing to load on this machine). Type sections (``cupy.ndarray``, ``cupy.ufunc``, ...)
list attribute names.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import sys
from pathlib import Path
from types import ModuleType

OUT = Path(__file__).resolve().parent.parent / "tests" / "cupy_namespace.json"

# The modules whose names are recorded, each with the NumPy/SciPy module its aliases are compared with.
MODULES = {
    "cupy": "numpy",
    "cupy.random": "numpy.random",
    "cupy.linalg": "numpy.linalg",
    "cupy.fft": "numpy.fft",
    "cupy.lib": "numpy.lib",
    "cupy.lib.stride_tricks": "numpy.lib.stride_tricks",
    "cupy.cuda": None,
    "cupy.cuda.runtime": None,
    "cupy.cuda.nccl": None,  # filled only where NCCL's library is installed (pip install nvidia-nccl-cu13)
    "cupyx": None,
    "cupyx.scipy": None,
    "cupyx.scipy.special": None,
}
# The types whose attributes are recorded (dunders included: ``__index__`` missing from ndarray matters).
TYPES = {
    "cupy.ndarray": "cupy.ndarray",
    "cupy.ufunc": "cupy.ufunc",
    "cupy.random.Generator": "cupy.random.Generator",
    "cupy.cuda.Device": "cupy.cuda.Device",
}


def _kind(obj: object, twin: ModuleType | None, name: str, cupy: ModuleType) -> str:
    if twin is not None and getattr(twin, name, None) is obj:
        return "alias"
    if isinstance(obj, cupy.ufunc):
        return "ufunc"
    if isinstance(obj, ModuleType):
        return "module"
    if inspect.isclass(obj):
        return "class"
    return "function"


def _lazy_names(module: ModuleType) -> set[str]:
    """Names that a module's ``__getattr__`` loads on first use (``cupy.random.Generator``): not in dir()."""
    getter = vars(module).get("__getattr__")
    if getter is None:
        return set()
    return set(re.findall(r"""key == ['"](\w+)['"]""", inspect.getsource(getter)))


def collect() -> dict:
    import cupy

    for module_name in MODULES:  # import all first: a parent lists a lazily loaded child once it is loaded
        importlib.import_module(module_name)
    names: dict = {"cupy_version": cupy.__version__}
    for module_name, twin_name in MODULES.items():
        module = importlib.import_module(module_name)
        twin = importlib.import_module(twin_name) if twin_name else None
        section = {}
        for name in sorted(set(dir(module)) | _lazy_names(module)):
            if name.startswith("_"):
                continue
            try:
                section[name] = _kind(getattr(module, name), twin, name, cupy)
            except Exception:  # noqa: BLE001 - a lazy name whose CUDA library is absent here still exists
                section[name] = "lazy"
        names[module_name] = section
    for section, dotted in TYPES.items():
        module_name, _, type_name = dotted.rpartition(".")
        cls = getattr(importlib.import_module(module_name), type_name)
        names[section] = sorted(name for name in dir(cls) if name != "__pyx_vtable__")
    return names


def main() -> int:
    names = collect()
    OUT.write_text(json.dumps(names, indent=1, sort_keys=True) + "\n")
    counts = ", ".join(f"{k} {len(v)}" for k, v in names.items() if isinstance(v, (dict, list)))
    print(f"wrote {OUT} (CuPy {names['cupy_version']}): {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
