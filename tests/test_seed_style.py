"""A ResNet written the way PyTorch tutorials write it runs unchanged on minires after swapping its imports.

``SOURCE`` below is one piece of code, written once: a d2l-style residual block (``conv1``, ``bn1``, ...,
``Y += X``, ``F.relu``), a small ResNet whose head pools with ``F.avg_pool2d(out, out.shape[-2:])`` and
flattens with ``out.view(out.shape[0], -1)``, the usual ``modules()`` initialization loop, a layer-by-layer
shape walk, a hand-written SGD step and an evaluation under ``torch.no_grad()``. Only its first lines, the
imports, differ between the two runs:

    import torch                        import minires as torch
    import torch.nn as nn               import minires.nn as nn
    import torch.nn.functional as F     import minires.nn.functional as F

The two copies then get the same weights (torch's state_dict loaded into minires) and the same batch, and
must agree: the shape walk, the loss, the logits, every gradient, the weights after the step, the running
statistics, and the predictions in eval mode (float64, to RTOL64 relative to each tensor's scale).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import numpy as np
import pytest

RTOL64 = 1e-8

TORCH_IMPORTS = """\
import torch
import torch.nn as nn
import torch.nn.functional as F
"""

MINIRES_IMPORTS = """\
import minires as torch
import minires.nn as nn
import minires.nn.functional as F
"""

SOURCE = """\
{imports}

class Residual(nn.Module):
    def __init__(self, input_channels, num_channels, use_1x1conv=False, strides=1):
        super().__init__()
        self.conv1 = nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
        if use_1x1conv:
            self.conv3 = nn.Conv2d(input_channels, num_channels, kernel_size=1, stride=strides)
        else:
            self.conv3 = None
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, X):
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3:
            X = self.conv3(X)
        Y += X
        return F.relu(Y)


class ResNet(nn.Module):
    def __init__(self, in_channels=1, num_classes=10):
        super(ResNet, self).__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = nn.Sequential(Residual(16, 16), Residual(16, 16))
        self.layer2 = nn.Sequential(Residual(16, 32, use_1x1conv=True, strides=2), Residual(32, 32))
        self.linear = nn.Linear(32, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer1(out)
        out = self.layer2(out)
        out = F.avg_pool2d(out, out.shape[-2:])
        out = out.view(out.shape[0], -1)
        out = self.linear(out)
        return out


def shape_walk(net, X):
    shapes = []
    for name, layer in net.named_children():
        if name == "linear":
            X = F.avg_pool2d(X, X.shape[-2:])
            X = X.view(X.size(0), -1)
        X = layer(X)
        if name == "bn1":
            X = F.relu(X)
        shapes.append((name, layer.__class__.__name__, tuple(X.shape)))
    return shapes


def train_step(net, X, y, lr=0.1):
    net.train()
    logits = net(X)
    loss = F.cross_entropy(logits, y)
    net.zero_grad()
    loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in net.named_parameters()}
    with torch.no_grad():
        for p in net.parameters():
            p -= lr * p.grad
    return loss.item(), logits.detach(), grads


def evaluate(net, X):
    net.eval()
    with torch.no_grad():
        logits = net(X)
    return logits, logits.argmax(dim=1)
"""


def _run(imports: str) -> dict[str, Any]:
    """Execute SOURCE under the given imports; returns its namespace."""
    namespace: dict[str, Any] = {"__name__": "seed_style"}
    exec(compile(SOURCE.replace("{imports}", imports), "<seed-style ResNet>", "exec"), namespace)  # noqa: S102
    return namespace


def _np(t: Any) -> np.ndarray:
    """A torch or minires tensor as a NumPy array."""
    return t.detach().cpu().numpy() if hasattr(t, "cpu") and hasattr(t, "detach") else np.asarray(t)


def _assert_close(actual: Any, expected: Any, what: str, floor: float = 0.0) -> None:
    """Within RTOL64 of the tensor's scale (at least ``floor``: see torch_twins.assert_close)."""
    importlib.import_module("torch_twins").assert_close(_np(actual), _np(expected), RTOL64, what, floor)


@pytest.fixture(scope="module")
def pair(torch: ModuleType) -> tuple[dict[str, Any], dict[str, Any]]:
    """The SOURCE namespaces: (torch's, minires's)."""
    return _run(TORCH_IMPORTS), _run(MINIRES_IMPORTS)


def test_source_differs_only_in_imports() -> None:
    a, b = SOURCE.replace("{imports}", TORCH_IMPORTS), SOURCE.replace("{imports}", MINIRES_IMPORTS)
    assert a.splitlines()[3:] == b.splitlines()[3:]
    assert "minires" not in a and "minires" in b


def test_runs_unchanged_after_swapping_imports(pair: tuple[dict[str, Any], dict[str, Any]]) -> None:
    import torch

    import minires as mr

    ns_t, ns_m = pair
    torch.manual_seed(0)
    mr.manual_seed(0)
    net_t, net_m = ns_t["ResNet"]().double(), ns_m["ResNet"]().double()
    assert list(net_m.state_dict()) == list(net_t.state_dict())
    net_m.load_state_dict(net_t.state_dict())

    rng = np.random.default_rng(0)
    X = rng.standard_normal((4, 1, 12, 12))
    y = rng.integers(0, 10, size=4)
    X_t, y_t = torch.tensor(X), torch.tensor(y)
    X_m, y_m = mr.tensor(X), mr.tensor(y)

    walk_t, walk_m = ns_t["shape_walk"](net_t, X_t), ns_m["shape_walk"](net_m, X_m)
    assert walk_m == walk_t
    assert walk_m[-1] == ("linear", "Linear", (4, 10))

    before = net_m.conv1.weight.numpy()
    loss_t, logits_t, grads_t = ns_t["train_step"](net_t, X_t, y_t)
    loss_m, logits_m, grads_m = ns_m["train_step"](net_m, X_m, y_m)
    stepped = not np.array_equal(net_m.conv1.weight.numpy(), before)
    assert stepped, (
        "`p -= lr * p.grad` under no_grad left the parameters unchanged: Tensor needs in-place operators"
    )
    assert isinstance(loss_m, float) and abs(loss_m - loss_t) <= RTOL64 * abs(loss_t)
    _assert_close(logits_m, logits_t, "logits")
    assert list(grads_m) == list(grads_t)
    # the conv biases before BatchNorm have gradient 0 in exact arithmetic: rounding noise, judged against
    # 1% of the largest gradient
    floor = 1e-2 * max(float(np.abs(_np(g)).max()) for g in grads_t.values())
    for name, g in grads_t.items():
        _assert_close(grads_m[name], g, f"gradient of {name}", floor)
    state_t, state_m = net_t.state_dict(), net_m.state_dict()
    for k, v in state_t.items():  # weights after the step, running statistics, num_batches_tracked
        _assert_close(state_m[k], v, f"after the step: {k}", floor=1e-2 if k.endswith("bias") else 0.0)

    (logits_t, pred_t), (logits_m, pred_m) = ns_t["evaluate"](net_t, X_t), ns_m["evaluate"](net_m, X_m)
    _assert_close(logits_m, logits_t, "eval logits")
    np.testing.assert_array_equal(_np(pred_m), _np(pred_t))


def test_tutorial_idioms_on_minires_tensors(torch: ModuleType) -> None:
    """The tensor idioms of the source, one by one, so that a missing one is named by its test line."""
    import minires as mr
    import minires.nn.functional as F

    x = mr.randn(2, 3, 4, 5)
    assert x.view(x.shape[0], -1).shape == (2, 60)
    assert x.view(x.size(0), -1).shape == (2, 60)
    assert F.avg_pool2d(x, x.shape[-2:]).shape == (2, 3, 1, 1)
    np.testing.assert_allclose(
        F.avg_pool2d(x, x.shape[-2:]).numpy()[..., 0, 0], x.numpy().mean(axis=(2, 3)), atol=1e-6
    )
    importlib.import_module("minires.nn")
