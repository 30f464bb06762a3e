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
"""

from __future__ import annotations

from typing import Any

from .backend import get_array_module
from .errors import GraphError, ShapeError
from .function import Function
from .grad_mode import no_grad
from .tensor import Tensor


def topological_order(root: Function) -> list[Function]:
    """Every node reachable from ``root``, each one before the nodes that produced its inputs."""
    post_order: list[Function] = []
    visited = {root}
    stack = [(root, iter(root.next_nodes))]
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
            grad = new.data if isinstance(new, Tensor) else new
    return grad


def accumulate_leaf(leaf: Tensor, grad: Any) -> None:
    """Run the leaf's hooks on ``grad`` (the sum over all its uses), then add it into ``leaf.grad``
    (created on first use as a copy, so that it never aliases another buffer)."""
    grad = _run_hooks(leaf._hooks, grad)
    if leaf.grad is None:
        leaf.grad = Tensor._wrap(grad.astype(leaf.dtype, copy=True))
    else:
        leaf.grad.data += grad


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


def backward(root: Tensor, gradient: Any = None, retain_graph: bool = False) -> None:
    """Compute d(root)/d(leaf) for every leaf that requires grad, weighted by ``gradient``."""
    if not root.requires_grad:
        raise GraphError("backward: the tensor does not require grad and has no grad_fn")
    if gradient is None:
        if root.numel() != 1:
            raise ShapeError(
                f"backward: a gradient can be created implicitly only for a scalar output, got shape "
                f"{root.shape}; pass gradient= of that shape"
            )
        gy = _ones_like(root.data)
    else:
        gy = gradient.data if isinstance(gradient, Tensor) else gradient
        gy = Tensor._coerce_array(gy, like=root.data)
        if tuple(gy.shape) != root.shape:
            raise ShapeError(
                f"backward: gradient has shape {tuple(gy.shape)}, expected the output's {root.shape}"
            )
    with no_grad():
        if root.grad_fn is None:
            accumulate_leaf(root, gy)
            return
        grads: dict[Function, Any] = {root.grad_fn: gy}
        leaf_grads: dict[Tensor, Any] = {}
        for node in topological_order(root.grad_fn):
            gy = grads.pop(node)
            gy = _run_hooks(node._hooks, gy)
            if node._retain_grad:  # after the hooks, as PyTorch does
                out = node._output_ref()
                if out is not None:
                    out.grad = (
                        Tensor._wrap(gy.copy()) if out.grad is None else Tensor._wrap(out.grad.data + gy)
                    )
            gxs = node.run_backward(gy)
            if not retain_graph:
                node.release()
            for nxt, gx, shape in zip(node.next_nodes, gxs, node.input_shapes, strict=True):
                if nxt is None or gx is None:
                    continue
                if tuple(gx.shape) != shape:
                    raise GraphError(
                        f"{node.name}: backward gave a gradient of shape {gx.shape} for input {shape}"
                    )
                pending = grads if isinstance(nxt, Function) else leaf_grads
                pending[nxt] = gx if nxt not in pending else pending[nxt] + gx
        for leaf, g in leaf_grads.items():
            accumulate_leaf(leaf, g)


def _ones_like(a: Any) -> Any:
    return get_array_module(a).ones_like(a)
