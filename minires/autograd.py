"""The backward pass: reverse-mode differentiation over the graph that the ops recorded.

The graph is a DAG of ``Function`` nodes; each node knows, per input, the node that produced it (its
``grad_fn``) or the leaf Tensor that should receive the gradient. ``backward`` walks it once:

1. a depth-first search from the root, with an explicit stack (a ResNet-152 graph has thousands of
   nodes, deeper than Python's recursion limit), lists the nodes in topological order;
2. in that order, from the output toward the inputs, each node receives the sum of the gradients of all
   its consumers (the chain rule for a value used in several places: dL/dx = sum_i dL/dy_i dy_i/dx),
   calls its ``backward``, frees its saved buffers, and passes one gradient to each input;
3. each leaf's gradient, summed over its uses, is added into its ``.grad`` (on top of what earlier
   ``backward`` calls left there).

``grad(outputs, inputs)`` runs the same walk from several outputs, but only through the nodes that lead
to ``inputs``, and returns their gradients instead of adding them into ``.grad``.

Anomaly mode (``detect_anomaly()``, ``set_detect_anomaly(True)``): every node records, when forward
creates it, the stack of the line that did; backward then checks each node's gradients and raises at
the first NaN, naming the node and showing that stack.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from . import function
from .backend import get_array_module
from .errors import GraphError, ShapeError
from .function import Function
from .grad_mode import no_grad
from .tensor import Tensor


def topological_order(root: Function | Iterable[Function]) -> list[Function]:
    """Every node reachable from ``root`` (one node or several), each one before the nodes that produced
    its inputs."""
    roots = [root] if isinstance(root, Function) else list(dict.fromkeys(root))
    post_order: list[Function] = []
    visited = set(roots)
    for start in roots:
        stack = [(start, iter(start.next_nodes))]
        while stack:
            node, inputs = stack[-1]
            for nxt in inputs:
                if isinstance(nxt, Function) and nxt not in visited:
                    visited.add(nxt)
                    stack.append((nxt, iter(nxt.next_nodes)))
                    break
            else:  # every input of `node` is finished: `node` comes after them in post-order
                stack.pop()
                post_order.append(node)
    return post_order[::-1]


def _run_hooks(hooks: list | None, grad: Any) -> Any:
    if not hooks:
        return grad
    for hook in hooks:
        new = hook(Tensor._wrap(grad))
        if new is not None:
            new = new.data if isinstance(new, Tensor) else new
            name = getattr(hook, "__name__", repr(hook))
            if getattr(new, "shape", None) != grad.shape:  # torch's checks of what a hook returns
                raise GraphError(f"hook '{name}' has changed the size of value")
            if new.dtype != grad.dtype:
                raise GraphError(
                    f"hook '{name}' has changed the type of value (was {grad.dtype} got {new.dtype})"
                )
            grad = new
    return grad


def accumulate_leaf(leaf: Tensor, grad: Any) -> None:
    """Run the leaf's hooks on ``grad`` (the sum over all its uses), then add it into ``leaf.grad``
    (created on first use as a copy, so that it never aliases another buffer), then run its
    post-accumulate hooks on the leaf."""
    grad = _run_hooks(leaf._hooks, grad)
    if leaf.grad is None:
        leaf.grad = Tensor._wrap(grad.astype(leaf.dtype, copy=True))
    else:
        leaf.grad.data += grad
    for hook in leaf._post_accumulate_hooks or ():
        hook(leaf)


def zero_grads(leaves: Any, set_to_none: bool = True) -> None:
    """Reset the ``.grad`` that backward accumulated on each leaf: to None, or to zeros in place (the grad,
    detached, keeps its array), as ``Module.zero_grad`` and ``Optimizer.zero_grad`` do in PyTorch."""
    for leaf in leaves:
        if leaf.grad is None:
            continue
        if set_to_none:
            leaf.grad = None
        else:
            leaf.grad.grad_fn = None
            leaf.grad.requires_grad = False
            leaf.grad.data[...] = 0


# ----- the walk --------------------------------------------------------------------------------------------
def _needed(order: list[Function], targets: set[Any]) -> set[Function]:
    """The nodes whose backward must run for a gradient to reach ``targets`` (leaf Tensors, and the
    ``grad_fn`` of non-leaf ones): those with an input that is a target or a needed node. ``order`` is
    topological, so walking it backward meets every producer before its consumers."""
    needed: set[Function] = set()
    for node in reversed(order):
        if any(nxt is not None and (nxt in targets or nxt in needed) for nxt in node.next_nodes):
            needed.add(node)
    return needed


def _walk(
    seeds: list[tuple[Tensor, Any]], retain_graph: bool, capture: list[Tensor] | None
) -> dict[Any, Any]:
    """Propagate each seed (output, dL/doutput) to the leaves. Without ``capture``, every leaf's gradient
    is added into its ``.grad``. With ``capture`` (the inputs of ``grad``), only the nodes that lead to
    those tensors run, nothing is accumulated, and the result maps each captured leaf (or the grad_fn of a
    captured non-leaf) to its gradient."""
    grads: dict[Function, Any] = {}
    leaf_grads: dict[Tensor, Any] = {}
    for out, gy in seeds:
        pending = leaf_grads if out.grad_fn is None else grads
        key = out if out.grad_fn is None else out.grad_fn
        pending[key] = gy if key not in pending else pending[key] + gy
    order = topological_order(grads)
    targets = None if capture is None else {t if t.grad_fn is None else t.grad_fn for t in capture}
    needed = None if targets is None else _needed(order, targets)
    captured: dict[Any, Any] = {}
    anomaly = function.is_anomaly_enabled()  # read once: no cost per node when off
    for node in order:
        if node not in grads:  # (with ``capture``) none of its consumers had to run
            continue
        gy = _run_hooks(node._hooks, grads.pop(node))
        if node._retain_grad:  # after the hooks, as PyTorch does
            out = node._output_ref()
            if out is not None:
                out.grad = Tensor._wrap(gy.copy()) if out.grad is None else Tensor._wrap(out.grad.data + gy)
        if targets is not None:
            if node in targets:
                captured[node] = gy
            if node not in needed:
                continue
        gxs = node.run_backward(gy)
        if anomaly:
            check_nan(node, gxs)
        if not retain_graph:
            node.release()
        for nxt, gx, shape in zip(node.next_nodes, gxs, node.input_shapes, strict=True):
            if nxt is None or gx is None:
                continue
            if tuple(gx.shape) != shape:
                raise GraphError(
                    f"{node.name}: backward gave a gradient of shape {gx.shape} for input {shape}"
                )
            if targets is not None and isinstance(nxt, Tensor) and nxt not in targets:
                continue  # a leaf that grad() was not asked about
            pending = grads if isinstance(nxt, Function) else leaf_grads
            pending[nxt] = gx if nxt not in pending else pending[nxt] + gx
    for leaf, g in leaf_grads.items():
        if capture is None:
            accumulate_leaf(leaf, g)
        else:
            captured[leaf] = _run_hooks(leaf._hooks, g)
    return captured


def backward(root: Tensor, gradient: Any = None, retain_graph: bool = False) -> None:
    """Compute d(root)/d(leaf) for every leaf that requires grad, weighted by ``gradient``."""
    if not root.requires_grad:
        raise GraphError("backward: the tensor does not require grad and has no grad_fn")
    gy = _seed("backward", root, gradient, "gradient")
    with no_grad():
        _walk([(root, gy)], retain_graph, capture=None)


def _seed(op: str, out: Tensor, gradient: Any, what: str) -> Any:
    """dL/d(out): ``gradient`` as an array like ``out``'s, or ones for a one-element ``out``."""
    if gradient is None:
        if out.numel() != 1:
            raise ShapeError(
                f"{op}: a gradient can be created implicitly only for a scalar output, got shape "
                f"{out.shape}; pass {what} of that shape"
            )
        return _ones_like(out.data)
    gy = Tensor._coerce_array(gradient.data if isinstance(gradient, Tensor) else gradient, like=out.data)
    if tuple(gy.shape) != out.shape:
        raise ShapeError(f"{op}: {what} has shape {tuple(gy.shape)}, expected the output's {out.shape}")
    return gy


def _as_list(tensors: Tensor | Sequence[Any], what: str) -> list[Any]:
    if isinstance(tensors, Tensor):
        return [tensors]
    if isinstance(tensors, Sequence) and not isinstance(tensors, str):
        return list(tensors)
    raise TypeError(
        f"grad: expected {what} to be a Tensor or a sequence of Tensors, got {type(tensors).__name__}"
    )


def grad(
    outputs: Tensor | Sequence[Tensor],
    inputs: Tensor | Sequence[Tensor],
    grad_outputs: Tensor | Sequence[Any] | None = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool | None = None,
    materialize_grads: bool = False,
) -> tuple[Tensor | None, ...]:
    """The gradients of ``outputs`` with respect to ``inputs``, as torch.autograd.grad: a tuple with one
    Tensor per input, the sum over the outputs of d(output)/d(input) weighted by its ``grad_outputs``
    entry (which may be None, meaning ones, for a one-element output). Nothing is added into any
    ``.grad`` (a non-leaf's ``retain_grad`` and the tensors' hooks still run, as in PyTorch).

    Only the nodes on a path from ``outputs`` to ``inputs`` run backward; they free their saved buffers
    unless ``retain_graph`` (default: ``create_graph``, that is False). An input that no output depends
    on is an error, or a None in the tuple with ``allow_unused=True`` (zeros with
    ``materialize_grads=True``). ``create_graph=True`` would need a backward that records a graph of its
    own (double backward), which minires does not have: it raises NotImplementedError.
    """
    if create_graph:
        raise NotImplementedError(
            "grad: create_graph=True needs double backward (a backward recorded as a graph to "
            "differentiate again), which minires does not have: its backward formulas run on raw arrays"
        )
    if allow_unused is None:
        allow_unused = materialize_grads
    if materialize_grads and not allow_unused:
        raise ValueError(
            "grad: materialize_grads=True needs allow_unused=True (or None), got allow_unused=False"
        )
    retain_graph = create_graph if retain_graph is None else bool(retain_graph)
    outs, ins = _as_list(outputs, "outputs"), _as_list(inputs, "inputs")
    if not ins:
        raise ValueError("grad: inputs is empty; name at least one Tensor to differentiate with respect to")
    if grad_outputs is None:
        gouts: list[Any] = [None] * len(outs)
    else:
        gouts = _as_list(grad_outputs, "grad_outputs")
        if len(gouts) != len(outs):
            raise ValueError(f"grad: got {len(outs)} outputs but {len(gouts)} grad_outputs; expected as many")
    for i, t in enumerate(ins):
        if not isinstance(t, Tensor):
            raise TypeError(f"grad: inputs[{i}] is a {type(t).__name__}, expected a Tensor")
        if not t.requires_grad:
            raise GraphError(
                f"grad: inputs[{i}] (shape {t.shape}) does not require grad; one of the "
                "differentiated Tensors must require grad to have a gradient"
            )
    seeds = []
    for i, (out, gout) in enumerate(zip(outs, gouts, strict=True)):
        if not isinstance(out, Tensor):
            raise TypeError(f"grad: outputs[{i}] is a {type(out).__name__}, expected a Tensor")
        if not out.requires_grad:
            raise GraphError(
                f"grad: outputs[{i}] (shape {out.shape}) does not require grad and has no grad_fn"
            )
        seeds.append((out, _seed("grad", out, gout, f"grad_outputs[{i}]")))
    with no_grad():
        captured = _walk(seeds, retain_graph, capture=ins)
    result: list[Tensor | None] = []
    for i, t in enumerate(ins):
        g = captured.get(t if t.grad_fn is None else t.grad_fn)
        if g is None:
            if not allow_unused:
                raise GraphError(
                    f"grad: inputs[{i}] (shape {t.shape}) was not used to compute the outputs, so it has no "
                    "gradient; pass allow_unused=True to get None for it"
                )
            result.append(
                Tensor._wrap(get_array_module(t.data).zeros_like(t.data)) if materialize_grads else None
            )
        else:
            result.append(Tensor._wrap(g.astype(t.dtype, copy=True)))
    return tuple(result)


def _ones_like(a: Any) -> Any:
    return get_array_module(a).ones_like(a)


# ----- anomaly mode ----------------------------------------------------------------------------------------
def is_anomaly_enabled() -> bool:
    """True while anomaly mode is on (``detect_anomaly``, ``set_detect_anomaly``)."""
    return function.is_anomaly_enabled()


def check_nan(node: Function, gxs: tuple[Any, ...]) -> None:
    """Raise RuntimeError if one of ``node``'s input gradients holds a NaN, naming the node and the output
    (the i-th gradient it returned), then showing where forward created the node. On CuPy arrays the test
    waits for the device (a sync), which only anomaly mode pays."""
    for i, gx in enumerate(gxs):
        if gx is None or gx.dtype.kind not in "fc":
            continue
        if bool(get_array_module(gx).isnan(gx).any()):
            stack = node.creation_stack
            where = (
                "Traceback of forward call that caused the error:\n" + "".join(stack.format())
                if stack is not None
                else "No forward pass information available: enable anomaly detection during the forward "
                "pass (mr.autograd.detect_anomaly()) to see where this node was created."
            )
            raise RuntimeError(
                f"Function '{type(node).__name__}Backward' returned nan values in its {i}th output.\n{where}"
            )


class set_detect_anomaly:  # noqa: N801 - PyTorch's name
    """Turn anomaly mode on or off now; used as a context manager, the previous mode comes back at the end
    of the block (as torch.autograd.set_detect_anomaly)."""

    def __init__(self, mode: bool) -> None:
        self.prev = function.is_anomaly_enabled()
        function.set_anomaly_enabled(mode)

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc: object) -> None:
        function.set_anomaly_enabled(self.prev)


class detect_anomaly:  # noqa: N801 - PyTorch's name
    """Anomaly mode within a block, or within each call of a decorated function (as
    torch.autograd.detect_anomaly): the nodes created record their forward stack, and a backward that
    computes a NaN raises, naming the node and showing that stack. It slows the run down (a traceback per
    node, a NaN check per gradient); use it to find a bug, not to train."""

    def __init__(self, check_nan: bool = True) -> None:
        if not check_nan:
            raise NotImplementedError(
                "detect_anomaly: check_nan=False is not supported; anomaly mode checks NaN"
            )

    def __enter__(self) -> None:
        self.prev = function.is_anomaly_enabled()
        function.set_anomaly_enabled(True)

    def __exit__(self, *exc: object) -> None:
        function.set_anomaly_enabled(self.prev)

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with detect_anomaly():
                return fn(*args, **kwargs)

        return wrapper
