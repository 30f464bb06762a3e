"""``make_dot(output)``: the autograd graph behind a Tensor as Graphviz DOT text, as torchviz draws PyTorch's.

    g = mr.utils.make_dot(loss, params=dict(model.named_parameters()))
    g.source                   # the DOT text: needs nothing installed
    g.render("graph.svg")      # runs Graphviz's `dot` (Debian package `graphviz`); returns the path
    g                          # in a notebook, shown as SVG (``_repr_svg_``)

What is drawn, with torchviz's colours:

- one grey box per ``Function`` reachable from the output, labelled with its op (``Conv2dBackward``); with
  ``show_saved=True`` also what forward saved for its backward (the names in its ``saved``, each with its
  shape and dtype, or ``freed`` once a backward has released it); with ``show_attrs=True`` its other
  attributes (stride, padding, dim, ...);
- one light-blue box per leaf that requires grad: its name from ``params``
  (``dict(model.named_parameters())``) and its shape;
- one green box per output, with its shape;
- an edge per input of each Function, in the direction the gradient flows: from the output to its Function,
  and from each Function to the node that produced its input (or the leaf), as backward walks PyTorch's
  ``next_functions``. (torchviz draws the same edges the other way round, as the data ran in forward.) A
  Function that uses one value twice (``x * x``) has two edges to it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from ..autograd import topological_order
from ..fileio import atomic_open
from ..function import Function
from ..tensor import Tensor

FORMATS = ("svg", "png", "pdf")
# Set on a node by Function.__call__ (the engine's bookkeeping), not an op's parameter: never shown.
_ENGINE_ATTRS = {"needs_input_grad", "next_nodes", "input_shapes", "_output_ref", "creation_stack", "_freed"}
_ENGINE_ATTRS |= {"_hooks", "_retain_grad"}


class GraphvizNotFoundError(RuntimeError):
    """Rendering needs Graphviz's ``dot`` program, and it is not on the PATH."""


class DotGraph:
    """DOT text (``.source``) that can be rendered by Graphviz's ``dot`` (``.render``, ``.pipe``) and that a
    notebook shows as SVG."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __str__(self) -> str:
        return self.source

    def __repr__(self) -> str:
        return f"<DotGraph: {self.source.count(' [label=')} nodes, {self.source.count(' -> ')} edges>"

    def pipe(self, format: str = "svg") -> bytes:  # noqa: A002 - graphviz's name
        """The graph rendered by ``dot -T<format>``, as bytes."""
        if format not in FORMATS:
            raise ValueError(f"DotGraph.pipe: format must be one of {FORMATS}, got {format!r}")
        exe = shutil.which("dot")
        if exe is None:
            raise GraphvizNotFoundError(
                "make_dot: rendering needs Graphviz's `dot` program, which is not on the PATH: install the "
                "package `graphviz` (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz). "
                "The DOT text itself is in .source without it."
            )
        done = subprocess.run(
            [exe, f"-T{format}"], input=self.source.encode(), capture_output=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"make_dot: `dot -T{format}` failed with exit status {done.returncode}: "
                f"{done.stderr.decode(errors='replace').strip()}"
            )
        return done.stdout

    def render(self, path: str | os.PathLike, format: str | None = None) -> str:  # noqa: A002
        """Write the rendered graph to ``path`` and return where it went. ``format`` is "svg", "png" or
        "pdf"; None takes it from ``path``'s suffix, else "svg". A path without that suffix gets it
        (``render("graph", format="png")`` writes graph.png, as graphviz's ``render`` names its output).
        The file is written atomically (a temporary file beside it, then a rename): it is never seen
        half-written, and a failed ``dot`` leaves no file."""
        path = os.fspath(path)
        suffix = os.path.splitext(path)[1].lstrip(".").lower()
        if format is None:
            format = suffix if suffix in FORMATS else "svg"  # noqa: A001
        target = path if suffix == format else f"{path}.{format}"
        data = self.pipe(format)
        with atomic_open(target, "wb") as f:
            f.write(data)
        return target

    def _repr_svg_(self) -> str | None:
        """The SVG a notebook shows; None (the notebook falls back to the repr) without Graphviz."""
        if shutil.which("dot") is None:
            return None
        return self.pipe("svg").decode()


def _quote(text: str) -> str:
    """A DOT string literal; a newline in ``text`` becomes a line break of the label."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(d)) for d in shape) + ")"


def _describe(value: Any, max_chars: int) -> str:
    """An array as its shape and dtype; anything else as its repr, cut to ``max_chars``."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"{_shape(value.shape)} {value.dtype}"
    text = repr(value)
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."


def function_label(
    fn: Function, show_saved: bool = False, show_attrs: bool = False, max_attr_chars: int = 50
) -> str:
    """``Conv2dBackward``, then (``show_attrs``) the op's parameters and (``show_saved``) what it saved."""
    lines = [f"{type(fn).__name__}Backward"]
    own = vars(fn)
    if show_attrs:
        for key in sorted(own):
            if key not in fn.saved and key not in _ENGINE_ATTRS:
                lines.append(f"{key}: {_describe(own[key], max_attr_chars)}")
    if show_saved:
        for key in fn.saved:
            if key in own:
                lines.append(f"{key}: {_describe(own[key], max_attr_chars)}")
            elif fn._freed:
                lines.append(f"{key}: freed")
    return "\n".join(lines)


def make_dot(
    output: Tensor | Sequence[Tensor],
    params: Mapping[str, Tensor] | None = None,
    show_saved: bool = False,
    *,
    show_attrs: bool = False,
    max_attr_chars: int = 50,
) -> DotGraph:
    """The autograd graph behind ``output`` (a Tensor, or several) as DOT text; see the module docstring.
    ``params`` names the leaves (``dict(model.named_parameters())``); leaves not in it are drawn with
    their shape only."""
    outputs = [output] if isinstance(output, Tensor) else list(output)
    for i, out in enumerate(outputs):
        if not isinstance(out, Tensor):
            raise TypeError(
                f"make_dot: expected a Tensor or a sequence of Tensors, got {type(out).__name__} at {i}"
            )
    names: dict[int, str] = {}
    for name, p in (params or {}).items():
        if not isinstance(p, Tensor):
            raise TypeError(f"make_dot: params[{name!r}] is a {type(p).__name__}, expected a Tensor")
        names[id(p)] = name

    ids: dict[int, str] = {}  # id(Function or leaf) -> DOT node id
    nodes: list[str] = []
    edges: list[str] = []

    def node_id(obj: Function | Tensor) -> str:
        key = id(obj)
        if key not in ids:
            ids[key] = f"n{len(ids)}"
            if isinstance(obj, Function):
                label = function_label(obj, show_saved, show_attrs, max_attr_chars)
                nodes.append(f"    {ids[key]} [label={_quote(label)}]")
            else:
                name = names.get(key)
                label = _shape(obj.shape) if name is None else f"{name}\n{_shape(obj.shape)}"
                nodes.append(f"    {ids[key]} [label={_quote(label)} fillcolor=lightblue]")
        return ids[key]

    roots = [out.grad_fn for out in outputs if out.grad_fn is not None]
    for fn in topological_order(roots) if roots else []:
        consumer = node_id(fn)
        for nxt in fn.next_nodes:
            if nxt is not None:
                edges.append(f"    {consumer} -> {node_id(nxt)}")  # the gradient's way
    for i, out in enumerate(outputs):
        if out.grad_fn is None:  # a leaf as the output: its own light-blue box
            node_id(out)
            continue
        out_id = f"out{i}"
        nodes.append(f"    {out_id} [label={_quote(_shape(out.shape))} fillcolor=darkolivegreen1]")
        edges.append(f"    {out_id} -> {ids[id(out.grad_fn)]}")

    header = [
        "digraph {",
        '    graph [size="12,12"]',
        "    node [align=left fontname=monospace fontsize=10 height=0.2 ranksep=0.1 shape=box style=filled]",
    ]
    return DotGraph("\n".join([*header, *nodes, *edges, "}"]) + "\n")
