"""The package's shape: its import graph has no cycle, no layer imports a higher one, and the Tensor's
installed methods agree with the signatures declared for static tools.

The graph is read from the source (every ``import`` statement anywhere in a module, in functions too, but
not under ``if TYPE_CHECKING:``), so a cycle hidden in a function-level import counts as one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import minires as mr
from minires.ops import tensor_methods

PACKAGE = Path(mr.__file__).parent

# Lower layers never import higher ones. A module's layer is that of the longest prefix listed.
LAYERS: dict[str, int] = {
    "minires.errors": 0,
    "minires.backend": 0,
    "minires.grad_mode": 0,
    "minires.rng": 0,
    "minires.fileio": 0,
    "minires.safe_pickle": 0,
    "minires.allocator": 0,
    "minires.threads": 0,
    "minires.memory_order": 0,
    "minires.distributed": 0,
    "minires.tensor": 1,
    "minires.function": 2,
    "minires.autograd": 3,
    "minires.ops": 4,
    "minires.gradcheck": 5,
    "minires.cuda": 5,
    "minires.backends": 5,
    "minires.nn": 6,
    "minires.optim": 7,
    "minires.data": 7,
    "minires.serialization": 7,
    "minires.models": 8,
    "minires.utils": 9,
    "minires.explain": 9,
    "minires.exercises": 9,
    "minires": 10,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _under_type_checking(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The minires modules that ``name`` imports (``from a import b`` counts as ``a.b`` when that is a
    module, else as ``a``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom) or _under_type_checking(node, parents):
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            targets = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in known else origin for a in node.names]
        found |= {t for t in targets if t in known and t != name}
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports(name, path, known) for name, path in mods.items()}


def layer(name: str) -> int:
    prefix = max((p for p in LAYERS if name == p or name.startswith(p + ".")), key=len)
    return LAYERS[prefix]


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first == last), or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = dict.fromkeys(edges, WHITE)
    for start in sorted(edges):
        if color[start] != WHITE:
            continue
        stack = [(start, iter(sorted(edges[start])))]
        path = [start]
        color[start] = GREY
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                color[node] = BLACK
                stack.pop()
                path.pop()
            elif color[child] == GREY:
                return path[path.index(child) :] + [child]
            elif color[child] == WHITE:
                color[child] = GREY
                stack.append((child, iter(sorted(edges[child]))))
                path.append(child)
    return None


def test_the_graph_is_read_as_python_runs_it() -> None:
    edges = graph()
    assert "minires.tensor" in edges["minires.function"]  # a top-level import
    assert {"minires.ops.elementwise", "minires.autograd"} <= edges["minires.ops.tensor_methods"]
    assert "minires.nn.functional" in edges["minires.nn"]  # from . import functional
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]


def test_no_import_cycle() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_module_imports_a_higher_layer() -> None:
    wrong = [
        f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})"
        for a, targets in graph().items()
        for b in sorted(targets)
        if layer(b) > layer(a)
    ]
    assert not wrong, "\n".join(wrong)


def test_every_module_has_a_layer() -> None:
    assert all(any(n == p or n.startswith(p + ".") for p in LAYERS) for n in modules())


def test_the_core_imports_neither_ops_nor_autograd() -> None:
    edges = graph()
    assert not {e for e in edges["minires.tensor"] if e.startswith(("minires.ops", "minires.autograd"))}
    assert not {e for e in edges["minires.function"] if e.startswith(("minires.ops", "minires.autograd"))}


def _declared_methods() -> set[str]:
    """The method names declared under ``if TYPE_CHECKING:`` in the Tensor class."""
    tree = ast.parse((PACKAGE / "tensor.py").read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Tensor")
    block = next(n for n in cls.body if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test))
    return {f.name for f in block.body if isinstance(f, ast.FunctionDef)}


def test_installed_methods_match_the_declared_ones() -> None:
    assert _declared_methods() == set(tensor_methods.TENSOR_METHODS)


@pytest.mark.parametrize("name", sorted(tensor_methods.TENSOR_METHODS))
def test_each_method_is_the_ops_function(name: str) -> None:
    assert getattr(mr.Tensor, name) is tensor_methods.TENSOR_METHODS[name]
    assert getattr(mr.nn.Parameter, name) is tensor_methods.TENSOR_METHODS[name]  # inherited
