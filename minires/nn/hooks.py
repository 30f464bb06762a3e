"""Module hooks: the handle that removes a hook, and full backward hooks built from identity ops.

A full backward hook ``hook(module, grad_input, grad_output)`` (PyTorch's semantics) sees the gradient of
the loss with respect to each positional argument of one call of the module and with respect to each
output, and may return a replacement ``grad_input``. As in PyTorch: a non-Tensor argument gets None; when no
input requires grad (a network's first layer), every entry is None; otherwise a Tensor input that gets no
gradient (it needs none, or the output does not depend on it) gets zeros; an output that the loss does
not depend on gets None in ``grad_output``.

The engine knows nothing of modules, so one call's boundary is marked in the graph with identity ops
whose backward reports back to a ``BackwardHook`` object:

    inputs   x_1 .. x_k  --Gather-->  token d (0-d)  --Scatter_i-->  x_i'   (the module sees x_i')
    outputs  y_j  --OutputTap_j-->  y_j'                                     (the caller sees y_j')

Each OutputTap_j records g_j = dL/dy_j on its way through. Each Scatter_i is the identity x_i' = x_i for the
forward; its backward stores dL/dx_i' and passes a zero to d. Gather produced d from every input, so
the engine runs it after all the Scatter nodes (topological order): there, with every dL/dx_i and every
dL/dy_j known, it calls the user hooks, and hands their (possibly replaced) grad_input on to x_1 .. x_k.
When no input requires a gradient, the hooks cannot wait for the inputs: a token made from a 0-d anchor
leaf then feeds every OutputTap, so that its node runs after all of them and calls the hooks with
grad_input all None, as PyTorch calls them in that case.

The ops are inserted only when a module has backward hooks, and only in grad mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..backend import get_array_module
from ..errors import GraphError
from ..function import Function
from ..grad_mode import is_grad_enabled
from ..tensor import Tensor


class RemovableHandle:
    """What every ``register_*_hook`` returns: ``remove()`` takes the hook off again (also as ``with``)."""

    _next_id = 0

    def __init__(self, *hook_dicts: dict) -> None:
        self.hook_dicts = hook_dicts  # the hook's dict first, then the dicts of its flags (with_kwargs)
        self.id = RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self) -> None:
        for d in self.hook_dicts:
            d.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _zero_token(like: Any) -> Any:
    return get_array_module(like).zeros((), dtype=like.dtype)


def _as_array(grad: Any) -> Any:
    return grad.data if isinstance(grad, Tensor) else grad


def _as_tensor(grad: Any) -> Tensor | None:
    return None if grad is None else Tensor._wrap(grad)


class _Gather(Function):
    r"""d = 0 (a 0-d token) from the module's inputs x_1 .. x_k that require grad.

    Backward: d does not depend on the x_i, but every x_i' = Scatter_i(d) does: this node runs once all
    of them have stored dL/dx_i', and returns, per input, what the user hooks leave of those gradients.
    """

    def __init__(self, hook: BackwardHook) -> None:
        self.hook = hook

    def forward(self, *xs: Any) -> Any:
        return _zero_token(xs[0])

    def backward(self, g: Any) -> tuple[Any, ...]:
        return self.hook.grad_inputs_ready()


class _Scatter(Function):
    r"""x_i' = x_i (the array itself), recorded as a function of the token d.

    Backward: stores g = dL/dx_i' for the Gather node, and gives d a zero (d is a dummy)."""

    def __init__(self, hook: BackwardHook, k: int, x: Any) -> None:
        self.hook, self.k, self.x = hook, k, x

    def forward(self, d: Any) -> Any:
        x = self.x
        del self.x  # the graph need not keep the input alive
        return x

    def backward(self, g: Any) -> Any:
        self.hook.stash[self.k] = g
        return _zero_token(g)


class _OutputTap(Function):
    r"""y_j' = y_j.  Backward: records g = dL/dy_j' as grad_output[j], passes it on unchanged (and a
    zero to the token, when there is one)."""

    def __init__(self, hook: BackwardHook, j: int) -> None:
        self.hook, self.j = hook, j

    def forward(self, y: Any, token: Any | None) -> Any:
        return y

    def backward(self, g: Any) -> tuple[Any, Any]:
        self.hook.grad_outputs[self.j] = g
        self.hook.outputs_seen = True
        return g, None if not self.needs_input_grad[1] else _zero_token(g)


class _OutputsDone(Function):
    r"""token = 0 from a 0-d anchor leaf; every OutputTap takes it as a second input, so this node runs
    after all of them: it calls the hooks when no input of the module requires a gradient."""

    def __init__(self, hook: BackwardHook) -> None:
        self.hook = hook

    def forward(self, anchor: Any) -> Any:
        return _zero_token(anchor)

    def backward(self, g: Any) -> Any:
        self.hook.call_without_inputs()
        return None


class BackwardHook:
    """The backward hooks of one call of ``module``: ``setup_input_hook`` wraps the positional arguments
    before ``forward``, ``setup_output_hook`` the result after it (see the module docstring)."""

    def __init__(self, module: Any, user_hooks: list[Callable[..., Any]]) -> None:
        self.module, self.user_hooks = module, user_hooks
        self.n_inputs, self.input_index = 0, None  # positions of the inputs that require grad
        self.input_meta: dict[
            int, tuple[Any, tuple, Any]
        ] = {}  # position -> (xp, shape, dtype), every Tensor
        self.n_outputs, self.output_index = 0, None
        self.stash: list[Any] = []
        self.grad_outputs: list[Any] = []
        self.outputs_seen = False

    def setup_input_hook(self, args: tuple) -> tuple:
        self.n_inputs = len(args)
        index = [i for i, a in enumerate(args) if isinstance(a, Tensor) and a.requires_grad]
        if not index or not is_grad_enabled():
            return args
        self.input_index = index
        self.input_meta = {
            i: (get_array_module(a.data), a.shape, a.dtype)
            for i, a in enumerate(args)
            if isinstance(a, Tensor)
        }
        self.stash = [None] * len(index)
        token = _Gather(self)(*[args[i] for i in index])
        new = list(args)
        for k, i in enumerate(index):
            new[i] = _Scatter(self, k, args[i].data)(token)
        return tuple(new)

    def setup_output_hook(self, result: Any) -> Any:
        is_tuple = isinstance(result, tuple)
        outs = result if is_tuple else (result,)
        self.n_outputs = len(outs)
        index = [j for j, y in enumerate(outs) if isinstance(y, Tensor) and y.requires_grad]
        if not index or not is_grad_enabled():
            return result
        self.output_index = index
        self.grad_outputs = [None] * len(outs)
        token = None
        if self.input_index is None:
            anchor = Tensor._wrap(_zero_token(outs[index[0]].data), requires_grad=True)
            token = _OutputsDone(self)(anchor)
        new = list(outs)
        for j in index:
            new[j] = _OutputTap(self, j)(outs[j], token)
        return tuple(new) if is_tuple else new[0]

    def _run_user_hooks(self, grad_input: tuple) -> tuple:
        grad_output = tuple(_as_tensor(g) for g in self.grad_outputs)
        for hook in self.user_hooks:
            out = hook(self.module, grad_input, grad_output)
            if out is None:
                continue
            if not isinstance(out, (tuple, list)) or len(out) != len(grad_input):
                got = len(out) if isinstance(out, (tuple, list)) else type(out).__name__
                raise GraphError(
                    f"backward hook of {type(self.module).__name__} returned an invalid grad_input: got "
                    f"{got}, expected a tuple of {len(grad_input)} (Tensor or None)"
                )
            grad_input = tuple(out)
        self.grad_outputs = [None] * self.n_outputs
        self.outputs_seen = False
        return grad_input

    def grad_inputs_ready(self) -> tuple[Any, ...]:
        """Called by Gather: run the hooks on (grad_input, grad_output); the gradients for the inputs."""
        grads, self.stash = self.stash, [None] * len(self.stash)
        if not self.outputs_seen:  # the gradient reached the inputs without passing through the outputs
            return tuple(grads)
        # As PyTorch: a Tensor input that gets no gradient (it needs none, or the output does not depend
        # on it) gets zeros, once some input requires grad; non-Tensor arguments get None.
        grad_input: list[Any] = [None] * self.n_inputs
        for i, (xp, shape, dtype) in self.input_meta.items():
            grad_input[i] = Tensor._wrap(xp.zeros(shape, dtype=dtype))
        for k, i in enumerate(self.input_index):
            if grads[k] is not None:
                grad_input[i] = _as_tensor(grads[k])
        grad_input = self._run_user_hooks(tuple(grad_input))
        return tuple(_as_array(grad_input[i]) for i in self.input_index)

    def call_without_inputs(self) -> None:
        """Called by OutputsDone when no input requires grad: grad_input is all None."""
        out = self._run_user_hooks((None,) * self.n_inputs)
        if any(g is not None for g in out):
            raise GraphError(
                f"backward hook of {type(self.module).__name__}: no input of this module requires grad, "
                "so the hook must return None or None for every gradient"
            )
