"""What ResNet tutorials call, run with minires and with torch and compared value for value.

Each tutorial's code is written once below, as the tutorial writes it, inside a function of ``lib``: a
namespace with ``torch``, ``nn``, ``F``, ``optim`` and ``lr_scheduler`` that is either torch's own modules
or minires's (the import swap ``import minires as torch`` would do). The tests build the model in torch,
copy its weights into the minires model by ``state_dict``, run the tutorial's steps in both, and compare
every number the tutorial computes: losses, accuracies, predictions, learning rates, weights afterwards.

The tutorials:
- Dive into Deep Learning, ResNet chapter and its PyTorch helpers (``accuracy`` with ``argmax(axis=1)``
  and ``astype``/``reduce_sum``, ``Accumulator``, ``evaluate_accuracy_gpu``, ``try_gpu``, ``train_ch6``,
  and the newer ``Classifier.accuracy``/``loss``);
- PyTorch's "Training a classifier" (CIFAR-10) tutorial, its training loop, evaluation and per-class
  accuracy, ``torch.device``, ``torch.save``/``torch.load`` of a state_dict;
- kuangliu/pytorch-cifar (``BasicBlock``/``Bottleneck`` with an ``nn.Sequential()`` shortcut,
  ``F.avg_pool2d(out, 4)``, ``outputs.max(1)``, ``predicted.eq(targets).sum().item()``, ``cudnn.benchmark``,
  ``CosineAnnealingLR``, the checkpoint dict);
- akamaster/pytorch_resnet_cifar10 (option A shortcut ``F.pad(x[:, :, ::2, ::2], ...)``, ``self.apply``
  with ``kaiming_normal_``, top-k ``accuracy``, ``MultiStepLR``);
- torchvision's initialization loop, the transfer-learning tutorial (``model.fc.in_features``, frozen
  parameters, ``filter(lambda p: p.requires_grad, ...)``, ``set_grad_enabled``), the hub classification
  example (``softmax``, ``topk``), and the common tensor calls, schedulers and gradient clipping.

What minires does not do (``nn.DataParallel``, ``torch.compile``, automatic mixed precision) raises
``NotImplementedError`` naming the PyTorch feature; the tests check that it does.

One difference stays: ``x.data`` is minires's raw NumPy/CuPy array (API.md), where torch's is a tensor.
Functions that take a tensor accept that array too (``mr.max(outputs.data, 1)``), but methods of a tensor
cannot be called on it: akamaster's ``accuracy(output.data, target)`` becomes
``accuracy(output.detach(), target)`` below, the one change a port needs.
"""

from __future__ import annotations

import copy
import importlib
import math
from dataclasses import dataclass
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minires as mr

RTOL = {"float32": 1e-4, "float64": 1e-9}


@dataclass
class Lib:
    """What ``import torch``, ``import torch.nn as nn``, ``import torch.nn.functional as F``, ``import
    torch.optim as optim`` and ``from torch.optim import lr_scheduler`` give a tutorial."""

    name: str
    torch: Any
    nn: Any
    F: Any
    optim: Any
    lr_scheduler: Any


def minires_lib() -> Lib:
    return Lib("minires", mr, mr.nn, mr.nn.functional, mr.optim, mr.optim.lr_scheduler)


def torch_lib(torch: ModuleType) -> Lib:
    return Lib("torch", torch, torch.nn, torch.nn.functional, torch.optim, torch.optim.lr_scheduler)


@pytest.fixture
def libs(torch: ModuleType) -> tuple[Lib, Lib]:
    """(minires, torch), each seeded."""
    mr.manual_seed(0)
    torch.manual_seed(0)
    return minires_lib(), torch_lib(torch)


def as_np(value: Any) -> Any:
    """A tensor of either library as a NumPy array; lists, tuples and dicts element by element."""
    if isinstance(value, (list, tuple)):
        return [as_np(v) for v in value] if isinstance(value, list) else tuple(as_np(v) for v in value)
    if isinstance(value, dict):
        return {k: as_np(v) for k, v in value.items()}
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return value


def assert_close(actual: Any, expected: Any, rtol: float, what: str) -> None:
    """Equal structure; arrays within ``rtol`` times their scale (max |expected|, at least 1), integer
    arrays and everything else exactly."""
    actual, expected = as_np(actual), as_np(expected)
    if isinstance(expected, dict):
        assert list(actual) == list(expected), f"{what}: keys {list(actual)} != torch's {list(expected)}"
        for k in expected:
            assert_close(actual[k], expected[k], rtol, f"{what}[{k!r}]")
        return
    if isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), f"{what}: {len(actual)} items, torch's {len(expected)}"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_close(a, e, rtol, f"{what}[{i}]")
        return
    if isinstance(expected, np.ndarray) and expected.dtype.kind == "f":
        assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, torch's {expected.shape}"
        assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype}, torch's {expected.dtype}"
        scale = max(1.0, float(np.abs(expected).max()) if expected.size else 1.0)
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what)
    elif isinstance(expected, float):
        assert math.isclose(actual, expected, rel_tol=rtol, abs_tol=rtol), f"{what}: {actual} != {expected}"
    elif isinstance(expected, np.ndarray):
        assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype}, torch's {expected.dtype}"
        np.testing.assert_array_equal(actual, expected, err_msg=what)
    else:
        assert actual == expected, f"{what}: {actual!r} != torch's {expected!r}"


def twin(make: Any, mine: Lib, ref: Lib, dtype: str = "float32") -> tuple[Any, Any]:
    """``make(lib)`` in both libraries, in ``dtype``, the torch model's weights copied into minires's."""
    t = make(ref).to(getattr(ref.torch, dtype))
    m = make(mine).to(dtype)
    assert list(m.state_dict()) == list(t.state_dict()), "state_dict keys differ from torch's"
    m.load_state_dict(t.state_dict())
    return m, t


def batches(lib: Lib, n: int, shape: tuple[int, ...], classes: int, dtype: str, seed: int) -> list[tuple]:
    """``n`` (inputs, labels) batches of random data, the same numbers in either library."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = rng.standard_normal(shape).astype(dtype)
        y = rng.integers(0, classes, shape[0])
        out.append((lib.torch.tensor(x), lib.torch.tensor(y)))
    return out


# ----- Dive into Deep Learning: the ResNet chapter and its training helpers (PyTorch version) --------------
def d2l(lib: Lib) -> SimpleNamespace:
    """The d2l book's code (d2l/torch.py and section 8.6), as it is written there."""
    torch, nn, F = lib.torch, lib.nn, lib.F

    def argmax(x: Any, *args: Any, **kwargs: Any) -> Any:
        return x.argmax(*args, **kwargs)

    def astype(x: Any, *args: Any, **kwargs: Any) -> Any:
        return x.type(*args, **kwargs)

    def reduce_sum(x: Any, *args: Any, **kwargs: Any) -> Any:
        return x.sum(*args, **kwargs)

    def size(x: Any, *args: Any, **kwargs: Any) -> Any:
        return x.numel(*args, **kwargs)

    def try_gpu(i: int = 0) -> Any:
        """Return gpu(i) if exists, otherwise return cpu()."""
        if torch.cuda.device_count() >= i + 1:
            return torch.device(f"cuda:{i}")
        return torch.device("cpu")

    def accuracy(y_hat: Any, y: Any) -> float:
        """Compute the number of correct predictions."""
        if len(y_hat.shape) > 1 and y_hat.shape[1] > 1:
            y_hat = argmax(y_hat, axis=1)
        cmp = astype(y_hat, y.dtype) == y
        return float(reduce_sum(astype(cmp, y.dtype)))

    class Accumulator:
        """For accumulating sums over `n` variables."""

        def __init__(self, n: int) -> None:
            self.data = [0.0] * n

        def add(self, *args: Any) -> None:
            self.data = [a + float(b) for a, b in zip(self.data, args, strict=True)]

        def __getitem__(self, idx: int) -> float:
            return self.data[idx]

    def evaluate_accuracy_gpu(net: Any, data_iter: Any, device: Any = None) -> float:
        """Compute the accuracy for a model on a dataset using a GPU."""
        if isinstance(net, nn.Module):
            net.eval()  # Set the model to evaluation mode
            if not device:
                device = next(iter(net.parameters())).device
        metric = Accumulator(2)
        with torch.no_grad():
            for X, y in data_iter:
                if isinstance(X, list):
                    X = [x.to(device) for x in X]
                else:
                    X = X.to(device)
                y = y.to(device)
                metric.add(accuracy(net(X), y), size(y))
        return metric[0] / metric[1]

    def init_weights(m: Any) -> None:
        if type(m) == nn.Linear or type(m) == nn.Conv2d:  # noqa: E721 - as the book writes it
            nn.init.xavier_uniform_(m.weight)

    def train_ch6(net: Any, train_iter: Any, test_iter: Any, num_epochs: int, lr: float, device: Any) -> Any:
        """Train a model with a GPU (the book's, without its plots and timer, and with ``net.apply(
        init_weights)`` left to the caller, which copies torch's initial weights over)."""
        net.to(device)
        optimizer = torch.optim.SGD(net.parameters(), lr=lr)
        loss = nn.CrossEntropyLoss()
        losses = []
        for _epoch in range(num_epochs):
            metric = Accumulator(3)
            net.train()
            for _i, (X, y) in enumerate(train_iter):
                optimizer.zero_grad()
                X, y = X.to(device), y.to(device)
                y_hat = net(X)
                l = loss(y_hat, y)  # noqa: E741 - the book's name
                l.backward()
                optimizer.step()
                with torch.no_grad():
                    metric.add(l * X.shape[0], accuracy(y_hat, y), X.shape[0])
                losses.append(l.item())
                train_l = metric[0] / metric[2]
                train_acc = metric[1] / metric[2]
            test_acc = evaluate_accuracy_gpu(net, test_iter)
        return SimpleNamespace(losses=losses, train_l=train_l, train_acc=train_acc, test_acc=test_acc)

    class Residual(nn.Module):
        """The Residual block of ResNet models."""

        def __init__(
            self, input_channels: int, num_channels: int, use_1x1conv: bool = False, strides: int = 1
        ) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1, stride=strides)
            self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
            if use_1x1conv:
                self.conv3 = nn.Conv2d(input_channels, num_channels, kernel_size=1, stride=strides)
            else:
                self.conv3 = None
            self.bn1 = nn.BatchNorm2d(num_channels)
            self.bn2 = nn.BatchNorm2d(num_channels)

        def forward(self, X: Any) -> Any:
            Y = F.relu(self.bn1(self.conv1(X)))
            Y = self.bn2(self.conv2(Y))
            if self.conv3:
                X = self.conv3(X)
            Y += X
            return F.relu(Y)

    def resnet_block(
        input_channels: int, num_channels: int, num_residuals: int, first_block: bool = False
    ) -> list:
        blk = []
        for i in range(num_residuals):
            if i == 0 and not first_block:
                blk.append(Residual(input_channels, num_channels, use_1x1conv=True, strides=2))
            else:
                blk.append(Residual(num_channels, num_channels))
        return blk

    def resnet18() -> Any:
        b1 = nn.Sequential(
            nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
        b2 = nn.Sequential(*resnet_block(64, 64, 2, first_block=True))
        b3 = nn.Sequential(*resnet_block(64, 128, 2))
        b4 = nn.Sequential(*resnet_block(128, 256, 2))
        b5 = nn.Sequential(*resnet_block(256, 512, 2))
        return nn.Sequential(
            b1, b2, b3, b4, b5, nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(512, 10)
        )

    # The newer edition's d2l.Classifier: accuracy and loss, reshaping as it does.
    def classifier_accuracy(Y_hat: Any, Y: Any, averaged: bool = True) -> Any:
        Y_hat = Y_hat.reshape((-1, Y_hat.shape[-1]))
        preds = Y_hat.argmax(axis=1).type(Y.dtype)
        compare = (preds == Y.reshape(-1)).type(torch.float32)
        return compare.mean() if averaged else compare

    def classifier_loss(Y_hat: Any, Y: Any, averaged: bool = True) -> Any:
        Y_hat = Y_hat.reshape((-1, Y_hat.shape[-1]))
        Y = Y.reshape((-1,))
        return F.cross_entropy(Y_hat, Y, reduction="mean" if averaged else "none")

    def clip_gradients(grad_clip_val: float, model: Any) -> None:
        """d2l.Trainer.clip_gradients."""
        params = [p for p in model.parameters() if p.requires_grad]
        norm = torch.sqrt(sum(torch.sum(p.grad**2) for p in params))
        if norm > grad_clip_val:
            for param in params:
                param.grad[:] *= grad_clip_val / norm

    return SimpleNamespace(**locals())


def test_d2l_accuracy_helpers(libs: tuple[Lib, Lib]) -> None:
    """``accuracy`` (argmax(axis=1), type(y.dtype), float of a sum), ``Accumulator``, the newer
    ``Classifier.accuracy``/``loss`` and ``try_gpu``, on the same logits in both libraries."""
    rng = np.random.default_rng(3)
    logits, labels = rng.standard_normal((12, 5)).astype(np.float32), rng.integers(0, 5, 12)
    results = []
    for lib in libs:
        book = d2l(lib)
        y_hat, y = lib.torch.tensor(logits), lib.torch.tensor(labels)
        metric = book.Accumulator(2)
        metric.add(book.accuracy(y_hat, y), book.size(y))
        device = book.try_gpu()
        results.append(
            {
                "accuracy": book.accuracy(y_hat, y),
                "metric": metric[0] / metric[1],
                "classifier accuracy": book.classifier_accuracy(y_hat, y),
                "per example": book.classifier_accuracy(y_hat, y, averaged=False),
                "loss": book.classifier_loss(y_hat, y),
                "losses": book.classifier_loss(y_hat, y, averaged=False),
                "device": str(device).split(":")[0],
                "device type": device.type,
            }
        )
    assert_close(results[0], results[1], RTOL["float32"], "d2l")
    assert results[0]["accuracy"] == float(np.sum(logits.argmax(axis=1) == labels))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_d2l_resnet_chapter(libs: tuple[Lib, Lib], dtype: str) -> None:
    """The chapter's shape walk of ResNet-18 (``torch.rand(size=...)``), then ``train_ch6`` on it for two
    epochs of two batches after ``net.apply(init_weights)``: losses, train and test accuracy, and every
    weight and running statistic afterwards, equal to torch's in float64 (in float32, the first loss)."""
    mine, ref = libs
    walks = []
    for lib in libs:
        net = d2l(lib).resnet18()
        X = lib.torch.rand(size=(1, 1, 96, 96))
        walk = []
        for layer in net:
            X = layer(X)
            walk.append((layer.__class__.__name__, tuple(X.shape)))
        walks.append(walk)
    assert walks[0] == walks[1]
    assert walks[0][-1] == ("Linear", (1, 10))

    def make(lib: Lib) -> Any:
        net = d2l(lib).resnet18()
        net.apply(d2l(lib).init_weights)
        return net

    m, t = twin(make, mine, ref, dtype)
    runs = []
    for lib, net in ((mine, m), (ref, t)):
        train_iter = batches(lib, 2, (4, 1, 32, 32), 10, dtype, seed=1)
        test_iter = batches(lib, 1, (4, 1, 32, 32), 10, dtype, seed=2)
        book = d2l(lib)
        runs.append((book.train_ch6(net, train_iter, test_iter, 2, 0.05, book.try_gpu()), net.state_dict()))
    (ours, our_state), (theirs, their_state) = runs
    if dtype == "float32":  # training a ResNet on 4 random images is chaotic: float32's rounding grows
        assert_close(ours.losses[0], theirs.losses[0], RTOL[dtype], "first loss")
        return
    assert_close(ours.losses, theirs.losses, 1e-8, "losses")
    assert_close(ours.train_l, theirs.train_l, 1e-8, "train_l")
    assert_close(our_state, their_state, 1e-8, "state_dict after training")
    assert (ours.train_acc, ours.test_acc) == (theirs.train_acc, theirs.test_acc)


def test_d2l_trainer_clips_gradients(libs: tuple[Lib, Lib]) -> None:
    """d2l.Trainer's step: ``loss.backward()`` inside ``torch.no_grad()``, then ``clip_gradients`` (a norm
    from ``torch.sqrt(sum(torch.sum(p.grad ** 2)))``, ``param.grad[:] *= ...``)."""
    mine, ref = libs

    def make(lib: Lib) -> Any:
        return lib.nn.Sequential(lib.nn.Linear(6, 8), lib.nn.ReLU(), lib.nn.Linear(8, 3))

    m, t = twin(make, mine, ref, "float64")
    grads = []
    for lib, net in ((mine, m), (ref, t)):
        ((X, y),) = batches(lib, 1, (5, 6), 3, "float64", seed=4)
        optim = lib.torch.optim.SGD(net.parameters(), 0.1)
        loss = d2l(lib).classifier_loss(net(X), y)
        optim.zero_grad()
        with lib.torch.no_grad():
            loss.backward()
            d2l(lib).clip_gradients(0.05, net)
            optim.step()
        grads.append(([p.grad for p in net.parameters()], net.state_dict()))
    assert_close(grads[0], grads[1], RTOL["float64"], "clipped gradients and weights")
    norm = math.sqrt(sum(float((g**2).sum()) for g in as_np(grads[0][0])))
    assert math.isclose(norm, 0.05, rel_tol=1e-9)


# ----- PyTorch's "Training a classifier" tutorial (CIFAR-10) ----------------------------------------------
CLASSES = ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def cifar10_tutorial(lib: Lib) -> SimpleNamespace:
    torch, nn, F, optim = lib.torch, lib.nn, lib.F, lib.optim

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 6, 5)
            self.pool = nn.MaxPool2d(2, 2)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1 = nn.Linear(16 * 5 * 5, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)

        def forward(self, x: Any) -> Any:
            x = self.pool(F.relu(self.conv1(x)))
            x = self.pool(F.relu(self.conv2(x)))
            x = torch.flatten(x, 1)  # flatten all dimensions except batch
            x = F.relu(self.fc1(x))
            x = F.relu(self.fc2(x))
            x = self.fc3(x)
            return x

    def train(net: Any, trainloader: Any, epochs: int = 2) -> list[float]:
        device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
        net.to(device)
        criterion = nn.CrossEntropyLoss()
        optimizer = optim.SGD(net.parameters(), lr=0.001, momentum=0.9)
        logged = []
        for _epoch in range(epochs):  # loop over the dataset multiple times
            running_loss = 0.0
            for i, data in enumerate(trainloader, 0):
                # get the inputs; data is a list of [inputs, labels]
                inputs, labels = data[0].to(device), data[1].to(device)
                optimizer.zero_grad()
                outputs = net(inputs)
                loss = criterion(outputs, labels)
                loss.backward()
                optimizer.step()
                running_loss += loss.item()
                if i % 2 == 1:  # print every 2 mini-batches (the tutorial: 2000)
                    logged.append(running_loss / 2)
                    running_loss = 0.0
        return logged

    def evaluate(net: Any, testloader: Any) -> dict:
        images, labels = testloader[0]
        outputs = net(images)
        _, predicted = torch.max(outputs, 1)
        predicted_names = " ".join(f"{CLASSES[predicted[j]]:5s}" for j in range(4))
        correct = 0
        total = 0
        # since we're not training, we don't need to calculate the gradients for our outputs
        with torch.no_grad():
            for data in testloader:
                images, labels = data
                # calculate outputs by running images through the network
                outputs = net(images)
                # the class with the highest energy is what we choose as prediction
                _, predicted = torch.max(outputs.data, 1)
                total += labels.size(0)
                correct += (predicted == labels).sum().item()
        correct_pred = {classname: 0 for classname in CLASSES}
        total_pred = {classname: 0 for classname in CLASSES}
        with torch.no_grad():
            for data in testloader:
                images, labels = data
                outputs = net(images)
                _, predictions = torch.max(outputs, 1)
                # collect the correct predictions for each class
                for label, prediction in zip(labels, predictions, strict=True):
                    if label == prediction:
                        correct_pred[CLASSES[label]] += 1
                    total_pred[CLASSES[label]] += 1
        accuracy = {
            classname: 100 * float(correct_count) / total_pred[classname]
            for classname, correct_count in correct_pred.items()
            if total_pred[classname]
        }
        return {
            "predicted": predicted_names,
            "accuracy": f"{100 * correct // total} %",
            "correct": correct,
            "per class": accuracy,
        }

    return SimpleNamespace(**locals())


def test_cifar10_tutorial(libs: tuple[Lib, Lib], tmp_path: Any) -> None:
    """Two epochs of the tutorial's loop (``loss.item()``, SGD with momentum), ``torch.save`` of the
    state_dict and ``load_state_dict(torch.load(PATH))`` into a new net, then its evaluation: the
    predicted class names (``CLASSES[predicted[j]]``), ``torch.max(outputs.data, 1)``, the correct count,
    the per-class accuracy; all in float64, equal to torch's."""
    mine, ref = libs
    m, t = twin(lambda lib: cifar10_tutorial(lib).Net(), mine, ref, "float64")
    results = []
    for lib, net in ((mine, m), (ref, t)):
        tutorial = cifar10_tutorial(lib)
        logged = tutorial.train(net, batches(lib, 4, (4, 3, 32, 32), 10, "float64", seed=5))
        PATH = str(tmp_path / f"cifar_net_{lib.name}.pth")
        lib.torch.save(net.state_dict(), PATH)
        net = tutorial.Net().double()
        net.load_state_dict(lib.torch.load(PATH))
        results.append(
            (logged, tutorial.evaluate(net, batches(lib, 3, (4, 3, 32, 32), 10, "float64", seed=6)))
        )
    assert_close(results[0], results[1], RTOL["float64"], "cifar10 tutorial")
    assert len(results[0][0]) == 4


# ----- kuangliu/pytorch-cifar --------------------------------------------------------------------------
def kuangliu(lib: Lib) -> SimpleNamespace:
    """models/resnet.py and main.py of kuangliu/pytorch-cifar."""
    torch, nn, F, optim = lib.torch, lib.nn, lib.F, lib.optim

    class BasicBlock(nn.Module):
        expansion = 1

        def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
            super(BasicBlock, self).__init__()  # noqa: UP008 - as the repository writes it
            self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)

            self.shortcut = nn.Sequential()
            if stride != 1 or in_planes != self.expansion * planes:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_planes, self.expansion * planes, kernel_size=1, stride=stride, bias=False),
                    nn.BatchNorm2d(self.expansion * planes),
                )

        def forward(self, x: Any) -> Any:
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            out += self.shortcut(x)
            out = F.relu(out)
            return out

    class Bottleneck(nn.Module):
        expansion = 4

        def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
            super(Bottleneck, self).__init__()  # noqa: UP008 - as the repository writes it
            self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, self.expansion * planes, kernel_size=1, bias=False)
            self.bn3 = nn.BatchNorm2d(self.expansion * planes)

            self.shortcut = nn.Sequential()
            if stride != 1 or in_planes != self.expansion * planes:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_planes, self.expansion * planes, kernel_size=1, stride=stride, bias=False),
                    nn.BatchNorm2d(self.expansion * planes),
                )

        def forward(self, x: Any) -> Any:
            out = F.relu(self.bn1(self.conv1(x)))
            out = F.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            out += self.shortcut(x)
            out = F.relu(out)
            return out

    class ResNet(nn.Module):
        def __init__(self, block: Any, num_blocks: list[int], num_classes: int = 10) -> None:
            super(ResNet, self).__init__()  # noqa: UP008 - as the repository writes it
            self.in_planes = 64

            self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.layer1 = self._make_layer(block, 64, num_blocks[0], stride=1)
            self.layer2 = self._make_layer(block, 128, num_blocks[1], stride=2)
            self.layer3 = self._make_layer(block, 256, num_blocks[2], stride=2)
            self.layer4 = self._make_layer(block, 512, num_blocks[3], stride=2)
            self.linear = nn.Linear(512 * block.expansion, num_classes)

        def _make_layer(self, block: Any, planes: int, num_blocks: int, stride: int) -> Any:
            strides = [stride] + [1] * (num_blocks - 1)
            layers = []
            for stride in strides:  # noqa: B020 - as the repository writes it
                layers.append(block(self.in_planes, planes, stride))
                self.in_planes = planes * block.expansion
            return nn.Sequential(*layers)

        def forward(self, x: Any) -> Any:
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.layer1(out)
            out = self.layer2(out)
            out = self.layer3(out)
            out = self.layer4(out)
            out = F.avg_pool2d(out, 4)
            out = out.view(out.size(0), -1)
            out = self.linear(out)
            return out

    def main(net: Any, trainloader: Any, testloader: Any, epochs: int, path: str) -> dict:
        """main.py, without its argument parsing and progress bar."""
        cudnn = importlib.import_module(f"{lib.torch.__name__}.backends.cudnn")
        device = "cuda" if torch.cuda.is_available() else "cpu"
        best_acc = 0  # best test accuracy
        net = net.to(device)
        if device == "cuda":
            cudnn.benchmark = True  # (and net = torch.nn.DataParallel(net), which minires does not do)
        criterion = nn.CrossEntropyLoss()
        optimizer = optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=200)
        log: dict = {"train": [], "test": [], "lr": []}

        def train(epoch: int) -> None:
            net.train()
            train_loss = 0
            correct = 0
            total = 0
            for batch_idx, (inputs, targets) in enumerate(trainloader):
                inputs, targets = inputs.to(device), targets.to(device)
                optimizer.zero_grad()
                outputs = net(inputs)
                loss = criterion(outputs, targets)
                loss.backward()
                optimizer.step()

                train_loss += loss.item()
                _, predicted = outputs.max(1)
                total += targets.size(0)
                correct += predicted.eq(targets).sum().item()
                log["train"].append((train_loss / (batch_idx + 1), 100.0 * correct / total, correct, total))

        def test(epoch: int) -> None:
            nonlocal best_acc
            net.eval()
            test_loss = 0
            correct = 0
            total = 0
            with torch.no_grad():
                for batch_idx, (inputs, targets) in enumerate(testloader):
                    inputs, targets = inputs.to(device), targets.to(device)
                    outputs = net(inputs)
                    loss = criterion(outputs, targets)

                    test_loss += loss.item()
                    _, predicted = outputs.max(1)
                    total += targets.size(0)
                    correct += predicted.eq(targets).sum().item()
                    log["test"].append((test_loss / (batch_idx + 1), correct, total))
            # Save checkpoint.
            acc = 100.0 * correct / total
            if acc >= best_acc:
                state = {"net": net.state_dict(), "acc": acc, "epoch": epoch}
                torch.save(state, path)
                best_acc = acc

        for epoch in range(0, epochs):
            train(epoch)
            test(epoch)
            scheduler.step()
            log["lr"].append(scheduler.get_last_lr()[0])
        checkpoint = torch.load(path)
        net.load_state_dict(checkpoint["net"])
        log.update(best_acc=checkpoint["acc"], start_epoch=checkpoint["epoch"], state=net.state_dict())
        return log

    return SimpleNamespace(**locals())


@pytest.mark.parametrize("block", ["BasicBlock", "Bottleneck"])
def test_kuangliu_pytorch_cifar(libs: tuple[Lib, Lib], block: str, tmp_path: Any) -> None:
    """kuangliu's ResNet (one block per stage, to keep it quick) through main.py's train and test for two
    epochs: per-batch loss and accuracy, the cosine lr, the checkpoint saved and loaded back, the weights
    and running statistics; float64, equal to torch's. ``import minires.backends.cudnn as cudnn`` and
    ``cudnn.benchmark = True`` work (and change nothing)."""
    mine, ref = libs

    def make(lib: Lib) -> Any:
        repo = kuangliu(lib)
        return repo.ResNet(getattr(repo, block), [1, 1, 1, 1])

    m, t = twin(make, mine, ref, "float64")
    logs = []
    for lib, net in ((mine, m), (ref, t)):
        train = batches(lib, 2, (2, 3, 32, 32), 10, "float64", seed=7)
        test = batches(lib, 1, (2, 3, 32, 32), 10, "float64", seed=8)
        logs.append(kuangliu(lib).main(net, train, test, 2, str(tmp_path / f"ckpt_{lib.name}.pth")))
    assert_close(logs[0], logs[1], 1e-8, "main.py")
    import minires.backends.cudnn as cudnn

    cudnn.benchmark = True
    assert mr.backends.cudnn.benchmark is True and cudnn.is_available() is False
    cudnn.benchmark = False


# ----- akamaster/pytorch_resnet_cifar10 (He et al.'s CIFAR ResNets, option A shortcuts) ----------------
def akamaster(lib: Lib) -> SimpleNamespace:
    """resnet.py and trainer.py of akamaster/pytorch_resnet_cifar10."""
    torch, nn, F = lib.torch, lib.nn, lib.F
    init = nn.init

    def _weights_init(m: Any) -> None:
        if isinstance(m, nn.Linear) or isinstance(m, nn.Conv2d):
            init.kaiming_normal_(m.weight)

    class LambdaLayer(nn.Module):
        def __init__(self, lambd: Any) -> None:
            super().__init__()
            self.lambd = lambd

        def forward(self, x: Any) -> Any:
            return self.lambd(x)

    class BasicBlock(nn.Module):
        expansion = 1

        def __init__(self, in_planes: int, planes: int, stride: int = 1, option: str = "A") -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)

            self.shortcut = nn.Sequential()
            if stride != 1 or in_planes != planes:
                if option == "A":
                    # For CIFAR10 ResNet paper uses option A.
                    self.shortcut = LambdaLayer(
                        lambda x: F.pad(
                            x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4), "constant", 0
                        )
                    )
                elif option == "B":
                    self.shortcut = nn.Sequential(
                        nn.Conv2d(
                            in_planes, self.expansion * planes, kernel_size=1, stride=stride, bias=False
                        ),
                        nn.BatchNorm2d(self.expansion * planes),
                    )

        def forward(self, x: Any) -> Any:
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            out += self.shortcut(x)
            out = F.relu(out)
            return out

    class ResNet(nn.Module):
        def __init__(self, block: Any, num_blocks: list[int], num_classes: int = 10) -> None:
            super().__init__()
            self.in_planes = 16

            self.conv1 = nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            self.layer1 = self._make_layer(block, 16, num_blocks[0], stride=1)
            self.layer2 = self._make_layer(block, 32, num_blocks[1], stride=2)
            self.layer3 = self._make_layer(block, 64, num_blocks[2], stride=2)
            self.linear = nn.Linear(64, num_classes)

            self.apply(_weights_init)

        def _make_layer(self, block: Any, planes: int, num_blocks: int, stride: int) -> Any:
            strides = [stride] + [1] * (num_blocks - 1)
            layers = []
            for stride in strides:  # noqa: B020 - as the repository writes it
                layers.append(block(self.in_planes, planes, stride))
                self.in_planes = planes * block.expansion
            return nn.Sequential(*layers)

        def forward(self, x: Any) -> Any:
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.layer1(out)
            out = self.layer2(out)
            out = self.layer3(out)
            out = F.avg_pool2d(out, out.size()[3])
            out = out.view(out.size(0), -1)
            out = self.linear(out)
            return out

    def resnet20() -> Any:
        return ResNet(BasicBlock, [3, 3, 3])

    def accuracy(output: Any, target: Any, topk: tuple[int, ...] = (1,)) -> list:
        """Computes the precision@k for the specified values of k"""
        maxk = max(topk)
        batch_size = target.size(0)

        _, pred = output.topk(maxk, 1, True, True)
        pred = pred.t()
        correct = pred.eq(target.view(1, -1).expand_as(pred))

        res = []
        for k in topk:
            correct_k = correct[:k].reshape(-1).float().sum(0)
            res.append(correct_k.mul_(100.0 / batch_size))
        return res

    def train(model: Any, train_loader: Any, epochs: int) -> list:
        criterion = nn.CrossEntropyLoss()
        optimizer = torch.optim.SGD(model.parameters(), 0.1, momentum=0.9, weight_decay=1e-4)
        lr_scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[1, 150], last_epoch=0 - 1)
        log = []
        for _epoch in range(epochs):
            model.train()
            for _i, (input, target) in enumerate(train_loader):
                input_var, target_var = input, target
                output = model(input_var)
                loss = criterion(output, target_var)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                output = output.float()
                loss = loss.float()
                prec1, prec2 = accuracy(output.detach(), target, topk=(1, 2))  # trainer.py: output.data
                log.append((loss.item(), prec1.item(), prec2.item(), input.size(0)))
            lr_scheduler.step()
            log.append(optimizer.param_groups[0]["lr"])
        return log

    return SimpleNamespace(**locals())


def test_akamaster_resnet20(libs: tuple[Lib, Lib]) -> None:
    """resnet20 with option-A shortcuts (F.pad of x[:, :, ::2, ::2] with zero channels) and ``self.apply(
    _weights_init)``, trained two epochs by trainer.py's loop with its top-k ``accuracy`` and MultiStepLR:
    float64, equal to torch's."""
    mine, ref = libs
    m, t = twin(lambda lib: akamaster(lib).resnet20(), mine, ref, "float64")
    logs = []
    for lib, net in ((mine, m), (ref, t)):
        logs.append(
            (
                akamaster(lib).train(net, batches(lib, 2, (4, 3, 16, 16), 10, "float64", seed=9), 2),
                net.state_dict(),
            )
        )
    assert_close(logs[0], logs[1], 1e-8, "trainer.py")
    assert logs[0][0][2] == pytest.approx(0.01)  # the milestone at epoch 1


# ----- torchvision: the initialization loop, the transfer-learning tutorial --------------------------------
def torchvision_init(lib: Lib, model: Any, zero_init_residual: bool = True) -> None:
    """torchvision.models.resnet.ResNet.__init__'s loop over self.modules()."""
    nn = lib.nn
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
    if zero_init_residual:
        for m in model.modules():
            if type(m).__name__ == "Bottleneck" and m.bn3.weight is not None:
                nn.init.constant_(m.bn3.weight, 0)
            elif type(m).__name__ == "BasicBlock" and m.bn2.weight is not None:
                nn.init.constant_(m.bn2.weight, 0)


def test_torchvision_init_loop() -> None:
    """The loop on a ResNet-50 whose BatchNorm2d layers are swapped for GroupNorm(32, C) (torchvision's
    ``norm_layer``): each conv's weights with kaiming's std sqrt(2 / fan_out), each norm's weight 1 (0 for
    the last of each block) and bias 0."""
    lib = minires_lib()
    model = mr.models.resnet50(norm_layer=lambda c: lib.nn.GroupNorm(32, c))
    torchvision_init(lib, model)
    kinds = {type(m).__name__ for m in model.modules()}
    assert "GroupNorm" in kinds and "BatchNorm2d" not in kinds
    for name, m in model.named_modules():
        if isinstance(m, lib.nn.Conv2d) and m.weight.numel() > 10_000:
            w = m.weight.numpy()
            fan_out = w.shape[0] * w.shape[2] * w.shape[3]
            assert abs(w.std() / math.sqrt(2 / fan_out) - 1) < 0.05, name
        if isinstance(m, lib.nn.GroupNorm):
            last = name.endswith("bn3")
            np.testing.assert_array_equal(m.weight.numpy(), 0 if last else 1, err_msg=name)
            np.testing.assert_array_equal(m.bias.numpy(), 0, err_msg=name)
    y = model(mr.randn(2, 3, 32, 32))
    assert y.shape == (2, 1000)


def train_model(
    lib: Lib, model: Any, criterion: Any, optimizer: Any, scheduler: Any, dataloaders: dict, num_epochs: int
) -> tuple:
    """The transfer-learning tutorial's train_model (its timing and prints left out)."""
    torch = lib.torch
    dataset_sizes = {x: sum(int(b[0].size(0)) for b in dataloaders[x]) for x in ["train", "val"]}
    best_model_wts = copy.deepcopy(model.state_dict())
    best_acc = 0.0
    log = []
    for _epoch in range(num_epochs):
        for phase in ["train", "val"]:
            if phase == "train":
                model.train()  # Set model to training mode
            else:
                model.eval()  # Set model to evaluate mode
            running_loss = 0.0
            running_corrects = 0
            for inputs, labels in dataloaders[phase]:
                inputs = inputs.to("cpu")
                labels = labels.to("cpu")
                optimizer.zero_grad()
                with torch.set_grad_enabled(phase == "train"):
                    outputs = model(inputs)
                    _, preds = torch.max(outputs, 1)
                    loss = criterion(outputs, labels)
                    if phase == "train":
                        loss.backward()
                        optimizer.step()
                running_loss += loss.item() * inputs.size(0)
                running_corrects += torch.sum(preds == labels.data)
            if phase == "train":
                scheduler.step()
            epoch_loss = running_loss / dataset_sizes[phase]
            epoch_acc = running_corrects.double() / dataset_sizes[phase]
            log.append(f"{phase} Loss: {epoch_loss:.4f} Acc: {epoch_acc:.4f}")
            if phase == "val" and epoch_acc > best_acc:
                best_acc = epoch_acc
                best_model_wts = copy.deepcopy(model.state_dict())
    model.load_state_dict(best_model_wts)
    return log, float(best_acc)


@pytest.mark.parametrize("mode", ["finetune", "feature extractor"])
def test_transfer_learning_tutorial(libs: tuple[Lib, Lib], mode: str) -> None:
    """ResNet-18 with a new ``fc`` of ``model.fc.in_features`` inputs; fine-tuned whole, or frozen
    (``param.requires_grad = False``) with only the new fc trained, its optimizer over
    ``filter(lambda p: p.requires_grad, ...)``; two epochs of train_model with StepLR: the logged lines,
    the best accuracy and the weights equal torch's (float64); the frozen weights stay as they were."""
    torch_twins = importlib.import_module("torch_twins")
    mine, ref = libs
    t = torch_twins.resnet18().double()
    m = mr.models.resnet18().double()
    m.load_state_dict(t.state_dict())
    for lib, model in ((mine, m), (ref, t)):
        if mode == "feature extractor":
            for param in model.parameters():
                param.requires_grad = False
        num_ftrs = model.fc.in_features
        model.fc = lib.nn.Linear(num_ftrs, 2).double()
    m.fc.load_state_dict(t.fc.state_dict())
    results = []
    for lib, model in ((mine, m), (ref, t)):
        params = filter(lambda p: p.requires_grad, model.parameters())
        optimizer = lib.optim.SGD(params, lr=0.001, momentum=0.9)
        scheduler = lib.lr_scheduler.StepLR(optimizer, step_size=7, gamma=0.1)
        data = {
            "train": batches(lib, 2, (4, 3, 32, 32), 2, "float64", seed=10),
            "val": batches(lib, 1, (4, 3, 32, 32), 2, "float64", seed=11),
        }
        before = {n: as_np(p).copy() for n, p in model.named_parameters()}  # torch's numpy() aliases
        log = train_model(lib, model, lib.nn.CrossEntropyLoss(), optimizer, scheduler, data, 2)
        results.append((log, model.state_dict()))
        kept = [np.array_equal(before[n], as_np(p)) for n, p in model.named_parameters() if n[:3] != "fc."]
        assert all(kept) == (mode == "feature extractor")
    assert_close(results[0], results[1], 1e-8, mode)
    assert results[0][0][0][0].startswith("train Loss: ")


# ----- evaluation: the hub example, no_grad, softmax, topk --------------------------------------------
def classify(lib: Lib, model: Any, input_tensor: Any, categories: list[str]) -> list:
    """The torch.hub ResNet example's last lines: softmax of the logits, the top 5 categories."""
    torch = lib.torch
    input_batch = input_tensor.unsqueeze(0)  # create a mini-batch as expected by the model
    with torch.no_grad():
        output = model(input_batch)
    # The output has unnormalized scores. To get probabilities, you can run a softmax on it.
    probabilities = torch.nn.functional.softmax(output[0], dim=0)
    top5_prob, top5_catid = torch.topk(probabilities, 5)
    return [(categories[top5_catid[i]], top5_prob[i].item()) for i in range(top5_prob.size(0))]


def predict(lib: Lib, model: Any, x: Any) -> dict:
    """What evaluation code writes after training, under ``@torch.no_grad()``."""
    torch, nn, F = lib.torch, lib.nn, lib.F

    @torch.no_grad()
    def run(x: Any) -> dict:
        model.eval()
        logits = model(x)
        return {
            "grad enabled": torch.is_grad_enabled(),
            "requires grad": logits.requires_grad,
            "softmax": torch.softmax(logits, dim=1),
            "F.softmax": F.softmax(logits, dim=1),
            "nn.Softmax": nn.Softmax(dim=1)(logits),
            "argmax": torch.argmax(logits, dim=1),
            "max": logits.max(dim=1).values,
            "indices": logits.max(dim=1).indices,
            "max keepdim": logits.max(1, keepdim=True)[0],
            "probabilities": F.softmax(logits, dim=1).squeeze(),
            "first": logits[0].unsqueeze(0),
        }

    return run(x)


def test_hub_classification_and_evaluation(libs: tuple[Lib, Lib]) -> None:
    """The hub example's top-5 (``torch.topk`` of the softmax, ``categories[top5_catid[i]]``,
    ``top5_prob[i].item()``) on ResNet-18, and an evaluation under ``@torch.no_grad()``."""
    torch_twins = importlib.import_module("torch_twins")
    mine, ref = libs
    t = torch_twins.resnet18(num_classes=10).eval()
    m = mr.models.resnet18(num_classes=10).eval()
    m.load_state_dict(t.state_dict())
    image = np.random.default_rng(12).standard_normal((3, 32, 32)).astype(np.float32)
    categories = [f"class {i}" for i in range(10)]
    top5 = [classify(lib, model, lib.torch.tensor(image), categories) for lib, model in ((mine, m), (ref, t))]
    assert [c for c, _ in top5[0]] == [c for c, _ in top5[1]]
    assert_close([p for _, p in top5[0]], [p for _, p in top5[1]], RTOL["float32"], "top-5 probabilities")
    x = np.random.default_rng(13).standard_normal((1, 3, 32, 32)).astype(np.float32)
    evaluated = [predict(lib, model, lib.torch.tensor(x)) for lib, model in ((mine, m), (ref, t))]
    assert_close(evaluated[0], evaluated[1], RTOL["float32"], "evaluation")
    assert evaluated[0]["grad enabled"] is False and mr.is_grad_enabled()


# ----- the tensor calls of training scripts ---------------------------------------------------------
def tensor_calls(lib: Lib, a: np.ndarray, labels: np.ndarray, path: str) -> dict:
    """One of each of the calls training and evaluation code makes on tensors."""
    torch, F = lib.torch, lib.F
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    x = torch.tensor(a).to(device)
    y = torch.tensor(labels.tolist()).to(device)
    torch.save({"x": x.cpu(), "epoch": 3}, path)
    return {
        "size": (tuple(x.size()), x.size(0), x.size(-1), x.shape[0], x.dim(), x.numel()),
        "dtype names": [str(t.dtype).split(".")[-1] for t in (torch.tensor([1, 2]), torch.tensor([1.0]), y)],
        "long": torch.zeros(2, dtype=torch.long).dtype == torch.int64,
        "float": x.float(),
        "double": x.double(),
        "half": x.half(),
        "long()": (x * 3).long(),
        "bool()": (x > 0).float().bool(),
        "type": x.type(torch.float64),
        "type name": x.type().rsplit(".", 1)[-1],
        "type str": (x.type("torch.DoubleTensor"), y.type("torch.FloatTensor")),
        "type_as": y.type_as(x),
        "to(other)": y.to(x),
        "numpy": x.cpu().numpy(),
        "is_cuda": x.is_cuda,
        "cat": torch.cat([x, x * 2], dim=1),
        "cat axis": torch.cat((x, x), axis=0),
        "flatten": torch.flatten(x, 1),
        "mean(2, 3)": x.mean(dim=(2, 3)),
        "mean keepdim": x.mean((2, 3), keepdim=True),
        "mean axis": x.mean(axis=(2, 3), keepdims=True),
        "sum axis": x.sum(axis=1),
        "max axis": x.max(axis=1)[0],
        "argmax axis": x.argmax(axis=1),
        "adaptive": F.adaptive_avg_pool2d(x, 1),
        "adaptive view": F.adaptive_avg_pool2d(x, (1, 1)).view(x.size(0), -1),
        "zeros_like": torch.zeros_like(x),
        "clone": x.clone(),
        "item": x[0, 0, 0, 0].item(),
        "detach": x.detach(),
        "squeeze": x[:1].squeeze(),
        "unsqueeze": x.unsqueeze(0).shape,
        "squeeze axis": x[:, :1].squeeze(axis=1),
        "eq": (x > 0).eq(x < 1),
        "comparisons": (x.gt(0), x.ge(0.5), x.lt(0), x.le(0.5), x.ne(0)),
        "all any": ((x > -10).all(), (x > 10).any(), (x > 0).any(dim=1)),
        "methods": (x.add(1), x.sub(x, alpha=2), x.mul(3), x.div(4)),
        "expand_as": x[:, :1].expand_as(x),
        "format": f"{x.sum():.3f} {y.sum():d}",
        "index": ["a", "b", "c", "d", "e"][y[0]],
        "load": (torch.load(path)["epoch"], torch.load(path)["x"]),
        "correct": (x.argmax(1) == y.view(-1, 1, 1)).sum().item(),
        "accuracy": (x.argmax(1) == y.view(-1, 1, 1)).sum().item() / y.numel(),
        "loss * size": F.cross_entropy(x.flatten(1), y).item() * x.size(0),
        "dropout eval": F.dropout(x, p=0.5, training=False),
    }


def test_tensor_calls(libs: tuple[Lib, Lib], tmp_path: Any) -> None:
    a = np.random.default_rng(14).standard_normal((3, 5, 2, 2)).astype(np.float32)
    labels = np.array([1, 4, 0])
    results = [tensor_calls(lib, a, labels, str(tmp_path / f"t_{lib.name}.pt")) for lib in libs]
    assert list(results[0]) == list(results[1])
    for key in results[1]:
        assert_close(results[0][key], results[1][key], 1e-6, key)


def test_creation_seeding_devices() -> None:
    """``torch.randn``/``rand`` (with ``size=``), ``manual_seed`` reproducing them, ``torch.tensor`` of a
    list, ``from_numpy`` sharing memory, ``as_tensor``, ``is_tensor``, ``torch.device`` and the cuda calls
    that seeding code makes (silently nothing without a GPU, as torch)."""
    mr.manual_seed(5)
    first = (mr.randn(2, 3), mr.rand(size=(2, 3)), mr.randn((4,)))
    mr.manual_seed(5)
    again = (mr.randn(2, 3), mr.rand(size=(2, 3)), mr.randn((4,)))
    for f, g in zip(first, again, strict=True):
        np.testing.assert_array_equal(f.numpy(), g.numpy())
    assert [f.shape for f in first] == [(2, 3), (2, 3), (4,)]
    with pytest.raises(TypeError, match="size"):
        mr.zeros(2, size=(2, 3))
    a = np.zeros(3)
    t = mr.from_numpy(a)
    a[0] = 5.0
    assert t[0].item() == 5.0 and t.dtype == mr.float64
    assert mr.as_tensor(a).data is a and mr.as_tensor([1, 2]).dtype == mr.int64
    assert mr.is_tensor(t) and not mr.is_tensor(a)
    d = mr.device("cuda:0")
    assert (d.type, d.index, str(d), repr(d)) == ("cuda", 0, "cuda:0", "device(type='cuda', index=0)")
    assert mr.device("cpu") == "cpu" and mr.device("cuda", 1) != mr.device("cuda:0")
    assert mr.tensor([1.0]).to(mr.device("cpu")).device == mr.device("cpu")
    assert mr.tensor([1.0]).to("cpu", non_blocking=True).device == "cpu"
    with pytest.raises(mr.DeviceError, match="tpu"):
        mr.device("tpu")
    for fn in (mr.cuda.manual_seed, mr.cuda.manual_seed_all):
        fn(0)
    mr.cuda.empty_cache()
    assert mr.cuda.device_count() == (1 if mr.cuda.is_available() else 0) or mr.cuda.device_count() > 1
    assert (mr.float, mr.double, mr.half, mr.long, mr.int, mr.bool) == (
        mr.float32,
        mr.float64,
        mr.float16,
        mr.int64,
        mr.int32,
        mr.bool_,
    )
    x = mr.ones(2)
    assert x.to(copy=True) is not x and x.to() is x


DTYPES = st.sampled_from(["float32", "float64"])


@settings(max_examples=40, deadline=None)
@given(
    shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=4),
    dtype=DTYPES,
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_axis_and_keepdims_aliases(torch: ModuleType, shape: tuple, dtype: str, seed: int, data: Any) -> None:
    """torch accepts NumPy's ``axis`` for ``dim`` (and ``keepdims`` for ``keepdim``) in the reductions,
    softmax, (un)squeeze, cat and stack; so does minires, with the same values and gradients."""
    a = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    keep = data.draw(st.booleans(), label="keepdims")
    calls = {
        "sum": lambda lib, x: x.sum(axis=axis, keepdims=keep),
        "torch.sum": lambda lib, x: lib.sum(x, axis=axis),
        "mean": lambda lib, x: x.mean(axis=axis, keepdims=keep),
        "torch.mean": lambda lib, x: lib.mean(x, axis=axis, keepdims=keep),
        "max": lambda lib, x: x.max(axis=axis, keepdims=keep)[0],
        "torch.max": lambda lib, x: lib.max(x, axis=axis).values,
        "min": lambda lib, x: x.min(axis=axis)[0],
        "softmax": lambda lib, x: x.softmax(axis=axis),
        "torch.softmax": lambda lib, x: lib.softmax(x, axis=axis),
        "log_softmax": lambda lib, x: x.log_softmax(axis=axis),
        "unsqueeze": lambda lib, x: x.unsqueeze(axis=axis),
        "squeeze": lambda lib, x: x[:1].squeeze(axis=0),
        "cat": lambda lib, x: lib.cat([x, 2 * x], axis=axis),
        "stack": lambda lib, x: lib.stack([x, 2 * x], axis=axis),
        "topk": lambda lib, x: x.topk(1, axis % x.ndim)[0],
    }
    for name, call in calls.items():
        outs = []
        for lib in (mr, torch):
            x = lib.tensor(a, requires_grad=True)
            y = call(lib, x)
            g = np.random.default_rng(seed + 1).standard_normal(tuple(y.shape)).astype(dtype)
            y.backward(lib.tensor(g))
            outs.append((y, x.grad))
        assert_close(outs[0], outs[1], RTOL[dtype], name)
    indices = []
    for lib in (mr, torch):
        x = lib.tensor(a)
        indices.append((x.argmax(axis=axis), lib.argmax(x, axis=axis, keepdims=keep), x.argmin(axis=axis)))
        with pytest.raises(TypeError):
            lib.sum(x, dim=0, axis=0)
    assert_close(indices[0], indices[1], 0, "argmax and argmin with axis")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_max_of_the_data_array_and_topk(torch: ModuleType, dtype: str) -> None:
    """``torch.max(outputs.data, 1)``: minires's ``.data`` is the array, which the functions take too;
    ``topk`` largest and smallest, sorted, along any dim, values and gradient as torch's;
    ``sorted=False`` gives the same elements."""
    rng = np.random.default_rng(15)
    a = rng.permutation(60).reshape(3, 4, 5).astype(dtype)
    x, t = mr.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    for dim in (0, 1, -1):
        assert_close(mr.max(x.data, dim), torch.max(t.data, dim), 0, "max of .data")
        assert_close(mr.argmax(x.data, dim), torch.argmax(t.data, dim), 0, "argmax of .data")
        for largest in (True, False):
            got, want = x.topk(2, dim, largest), torch.topk(t, 2, dim, largest)
            assert_close(tuple(got), tuple(want), RTOL[dtype], f"topk dim={dim} largest={largest}")
            unsorted = mr.topk(x, 3, dim, largest, sorted=False).values.numpy()
            expected = as_np(torch.topk(t, 3, dim, largest, sorted=False).values)
            np.testing.assert_array_equal(np.sort(unsorted, axis=dim), np.sort(expected, axis=dim))
    x.topk(3, 1).values.sum().backward()
    t.topk(3, 1).values.sum().backward()
    assert_close(x.grad, t.grad, RTOL[dtype], "topk gradient")
    # torch.max's other overload, max(input, other): the elementwise maximum (the op table's row `maximum`)
    assert_close(mr.max(x, x * 0.5), torch.max(t, t * 0.5), RTOL[dtype], "max(input, other)")
    assert_close(mr.min(x, x * 0.5), torch.min(t, t * 0.5), RTOL[dtype], "min(input, other)")


# ----- padding and group normalization ------------------------------------------------------------
PADDING_LAYERS = {
    "ZeroPad2d(1)": lambda nn: nn.ZeroPad2d(1),
    "ZeroPad2d((1, 0, 2, -1))": lambda nn: nn.ZeroPad2d((1, 0, 2, -1)),
    "ConstantPad2d(2, 3.5)": lambda nn: nn.ConstantPad2d(2, 3.5),
    "ConstantPad2d((0, 1, 1, 0), -1.0)": lambda nn: nn.ConstantPad2d((0, 1, 1, 0), -1.0),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layer", list(PADDING_LAYERS))
def test_padding_layers(libs: tuple[Lib, Lib], layer: str, dtype: str) -> None:
    """nn.ZeroPad2d and nn.ConstantPad2d on (N, C, H, W) and (C, H, W) inputs: values, the input
    gradient and the repr, as torch's."""
    rng = np.random.default_rng(16)
    for shape in ((2, 3, 4, 5), (3, 4, 5)):
        a = rng.standard_normal(shape).astype(dtype)
        g = rng.standard_normal(shape).astype(dtype)
        outs = []
        for lib in libs:
            module = PADDING_LAYERS[layer](lib.nn)
            x = lib.torch.tensor(a, requires_grad=True)
            y = module(x)
            (y * lib.torch.tensor(np.resize(g, tuple(y.shape)))).sum().backward()
            outs.append((y, x.grad, repr(module)))
        assert_close(outs[0], outs[1], RTOL[dtype], layer)


def test_pad_modes_other_than_constant_raise(libs: tuple[Lib, Lib]) -> None:
    mine, _ = libs
    x = mr.ones(1, 1, 3, 3)
    for mode in ("reflect", "replicate", "circular"):
        with pytest.raises(NotImplementedError, match=f"mode='{mode}'.*torch.nn.functional.pad"):
            mine.F.pad(x, (1, 1, 1, 1), mode=mode)
    assert mine.F.pad(x, (1, 1, 1, 1), mode="constant", value=2.0).sum().item() == 9 + 16 * 2


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "groups, channels, affine", [(2, 4, True), (1, 6, True), (3, 6, False), (4, 4, True)]
)
def test_group_norm_layer(
    libs: tuple[Lib, Lib], dtype: str, groups: int, channels: int, affine: bool
) -> None:
    """nn.GroupNorm against torch's: state_dict keys, repr, outputs and every gradient in train and in
    eval (the same computation), on (N, C, H, W) and (N, C) inputs, after a step that changed the weights."""
    mine, ref = libs
    m, t = twin(lambda lib: lib.nn.GroupNorm(groups, channels, affine=affine), mine, ref, dtype)
    assert repr(m) == repr(t)
    rng = np.random.default_rng(17)
    if affine:
        with mr.no_grad():
            m.weight.copy_(mr.tensor(rng.standard_normal(channels).astype(dtype)))
        t.weight.data.copy_(ref.torch.from_numpy(m.weight.numpy()))
    for shape in ((3, channels, 4, 5), (5, channels)):
        a, g = rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)
        for training in (True, False):
            outs = []
            for lib, layer in ((mine, m), (ref, t)):
                layer.train(training)
                layer.zero_grad()
                x = lib.torch.tensor(a, requires_grad=True)
                y = layer(x)
                y.backward(lib.torch.tensor(g))
                outs.append((y, x.grad) + tuple(p.grad for p in layer.parameters()))
            assert_close(outs[0], outs[1], RTOL[dtype], f"GroupNorm{(groups, channels)} on {shape}")
    with pytest.raises(ValueError, match="divisible"):
        mine.nn.GroupNorm(4, 6)


# ----- learning-rate schedulers, gradient clipping ----------------------------------------------------
def lr_run(lib: Lib, make: Any, steps: int, metrics: list[float] | None = None, opt: str = "SGD") -> list:
    """The lrs (and momenta) of two param groups over ``steps`` optimizer steps, each followed by
    ``scheduler.step()`` (``scheduler.step(metric)`` for ReduceLROnPlateau)."""
    groups = [
        {"params": [lib.nn.Parameter(lib.torch.ones(2))], "lr": 0.1},
        {"params": [lib.nn.Parameter(lib.torch.ones(2))], "lr": 0.03},
    ]
    optimizer = lib.optim.SGD(groups, lr=0.1, momentum=0.9) if opt == "SGD" else lib.optim.Adam(groups)
    scheduler = make(optimizer, lib.lr_scheduler)
    trace = []
    for i in range(steps):
        trace.append(
            (
                [g["lr"] for g in optimizer.param_groups],
                [g.get("momentum", g.get("betas")) for g in optimizer.param_groups],
            )
        )
        optimizer.step()
        if metrics is None:
            scheduler.step()
        else:
            scheduler.step(metrics[i])
    trace.append(scheduler.get_last_lr())
    return trace


PLATEAU_METRICS = [1.0, 0.9, 0.95, 0.96, 0.97, 0.97, 0.8, 0.81, 0.82, 0.83, 0.84, 0.85, 0.79, 0.9] + [
    0.9
] * 16
SCHEDULERS = {
    "ExponentialLR": lambda o, S: S.ExponentialLR(o, gamma=0.9),
    "LambdaLR-warmup": lambda o, S: S.LambdaLR(o, lambda epoch: min(1.0, (epoch + 1) / 5)),
    "LambdaLR-per-group": lambda o, S: S.LambdaLR(o, [lambda e: 0.95**e, lambda e: 1 / (e + 1)]),
    "OneCycleLR": lambda o, S: S.OneCycleLR(o, max_lr=0.1, total_steps=30),
    "OneCycleLR-epochs": lambda o, S: S.OneCycleLR(o, max_lr=[0.5, 0.2], epochs=3, steps_per_epoch=10),
    "OneCycleLR-linear-3-phase": lambda o, S: S.OneCycleLR(
        o, max_lr=0.3, total_steps=30, pct_start=0.25, anneal_strategy="linear", three_phase=True
    ),
    "OneCycleLR-no-momentum": lambda o, S: S.OneCycleLR(o, max_lr=0.1, total_steps=30, cycle_momentum=False),
    "MultiStepLR": lambda o, S: S.MultiStepLR(o, milestones=[10, 20], gamma=0.1),
    "ReduceLROnPlateau": lambda o, S: S.ReduceLROnPlateau(o, "min"),
    "ReduceLROnPlateau-patience": lambda o, S: S.ReduceLROnPlateau(o, patience=1, cooldown=2, factor=0.5),
    "ReduceLROnPlateau-max-abs": lambda o, S: S.ReduceLROnPlateau(
        o, mode="max", threshold_mode="abs", threshold=0.05, patience=0, min_lr=[0.05, 0.01]
    ),
}


@pytest.mark.parametrize("opt", ["SGD", "Adam"])
@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_schedulers(libs: tuple[Lib, Lib], name: str, opt: str) -> None:
    """Each scheduler's lrs (and, for OneCycleLR, the cycled momentum or Adam's beta1) over 30 steps,
    equal to torch's, bit for bit."""
    metrics = PLATEAU_METRICS if name.startswith("ReduceLROnPlateau") else None
    traces = [lr_run(lib, SCHEDULERS[name], 30, metrics, opt) for lib in libs]
    assert traces[0] == traces[1]


def test_scheduler_state_and_errors(libs: tuple[Lib, Lib], tmp_path: Any) -> None:
    """A scheduler's state_dict through mr.save/mr.load resumes it where it was (ReduceLROnPlateau with its
    best value and counters; OneCycleLR); OneCycleLR past total_steps and a bad mode raise as torch's."""
    mine, ref = libs
    for make in (SCHEDULERS["ReduceLROnPlateau-patience"], SCHEDULERS["OneCycleLR"]):
        opt = mine.optim.SGD([mr.nn.Parameter(mr.ones(2))], lr=0.1, momentum=0.9)
        sched = make(opt, mine.lr_scheduler)
        for metric in PLATEAU_METRICS[:8]:
            opt.step()
            sched.step(metric) if isinstance(sched, mine.lr_scheduler.ReduceLROnPlateau) else sched.step()
        mr.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, tmp_path / "ckpt.mr")
        state = mr.load(tmp_path / "ckpt.mr")
        opt2 = mine.optim.SGD([mr.nn.Parameter(mr.ones(2))], lr=0.1, momentum=0.9)
        opt2.load_state_dict(state["optimizer"])
        sched2 = make(opt2, mine.lr_scheduler)
        sched2.load_state_dict(state["scheduler"])
        assert sched2.state_dict() == sched.state_dict()
        assert sched2.get_last_lr() == sched.get_last_lr()
    for lib in libs:
        opt = lib.optim.SGD([lib.nn.Parameter(lib.torch.ones(2))], lr=0.1)
        sched = lib.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=2)
        opt.step()
        sched.step()
        sched.step()
        with pytest.raises(ValueError, match="total steps is 2"):
            sched.step()
        with pytest.raises(ValueError, match="unknown"):
            lib.lr_scheduler.ReduceLROnPlateau(opt, mode="lowest")
        with pytest.raises(ValueError, match="total_steps"):
            lib.lr_scheduler.OneCycleLR(opt, max_lr=0.1)


def test_clip_grad_norm_and_param_group_lr(libs: tuple[Lib, Lib]) -> None:
    """``nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)`` after backward, the returned norm and
    the clipped gradients; ``optimizer.param_groups[0]["lr"]`` under a scheduler; float64."""
    mine, ref = libs

    def make(lib: Lib) -> Any:
        return lib.nn.Sequential(
            lib.nn.Conv2d(3, 4, 3),
            lib.nn.BatchNorm2d(4),
            lib.nn.ReLU(),
            lib.nn.Flatten(),
            lib.nn.Linear(64, 3),
        )

    m, t = twin(make, mine, ref, "float64")
    results = []
    for lib, model in ((mine, m), (ref, t)):
        ((x, y),) = batches(lib, 1, (2, 3, 6, 6), 3, "float64", seed=18)
        optimizer = lib.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
        scheduler = lib.lr_scheduler.StepLR(optimizer, 1, gamma=0.5)
        lrs, norms = [], []
        for _ in range(3):
            optimizer.zero_grad()
            loss = lib.nn.CrossEntropyLoss(label_smoothing=0.1)(model(x), y) * 10
            loss.backward()
            norms.append(float(lib.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)))
            optimizer.step()
            scheduler.step()
            lrs.append(optimizer.param_groups[0]["lr"])
        results.append((norms, lrs, [p.grad for p in model.parameters()], model.state_dict()))
    assert_close(results[0], results[1], RTOL["float64"], "clipping")


# ----- what minires does not do: NotImplementedError naming the PyTorch feature ---------------------
def test_data_parallel_compile_and_amp_raise(libs: tuple[Lib, Lib]) -> None:
    """``nn.DataParallel``, ``torch.compile``, ``torch.autocast``/``torch.cuda.amp.autocast`` and the
    ``GradScaler`` raise NotImplementedError naming the feature and what to do instead."""
    model = mr.nn.Linear(2, 2)
    with pytest.raises(NotImplementedError, match=r"torch\.nn\.DataParallel.*model\.to\('cuda'\)"):
        mr.nn.DataParallel(model)
    with pytest.raises(NotImplementedError, match=r"torch\.compile.*eagerly"):
        mr.compile(model)
    for make in (
        lambda: mr.autocast("cuda"),
        lambda: mr.autocast(device_type="cuda", dtype=mr.float16),
        lambda: mr.amp.autocast("cuda"),
        lambda: mr.cuda.amp.autocast(),
    ):
        with pytest.raises(NotImplementedError, match=r"autocast.*enabled=False"):
            make()
    for make in (
        lambda: mr.amp.GradScaler(),
        lambda: mr.amp.GradScaler("cuda"),
        lambda: mr.cuda.amp.GradScaler(),
    ):
        with pytest.raises(NotImplementedError, match=r"GradScaler.*mixed precision"):
            make()


def test_disabled_amp_trains_as_torch_without_it(libs: tuple[Lib, Lib]) -> None:
    """The AMP recipe's loop with ``use_amp = False``: ``autocast(..., enabled=False)`` and
    ``GradScaler(enabled=False)`` change nothing, so the steps equal torch's plain ones."""
    mine, ref = libs
    m, t = twin(lambda lib: lib.nn.Linear(5, 3), mine, ref, "float64")
    results = []
    use_amp = False
    for lib, net in ((mine, m), (ref, t)):
        ((x, y),) = batches(lib, 1, (4, 5), 3, "float64", seed=19)
        opt = lib.optim.SGD(net.parameters(), lr=0.1)
        if lib is mine:
            scaler = mr.cuda.amp.GradScaler(enabled=use_amp)
            autocast = mr.autocast(device_type="cuda", dtype=mr.float16, enabled=use_amp)
        else:
            scaler = lib.torch.amp.GradScaler("cpu", enabled=use_amp)
            autocast = lib.torch.autocast(device_type="cpu", dtype=lib.torch.bfloat16, enabled=use_amp)
        losses = []
        for _ in range(3):
            with autocast:
                loss = lib.nn.functional.cross_entropy(net(x), y)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            scaler.step(opt)
            scaler.update()
            opt.zero_grad()
            losses.append(loss.item())
        results.append((losses, net.state_dict(), scaler.is_enabled()))
    assert_close(results[0], results[1], RTOL["float64"], "disabled amp")


def test_backends_flags() -> None:
    """``torch.backends.cudnn`` flags are accepted and kept; ``cudnn`` and ``mps`` report unavailable."""
    import minires.backends.cudnn as cudnn

    old = (cudnn.benchmark, cudnn.deterministic)
    try:
        mr.backends.cudnn.deterministic = True
        cudnn.benchmark = False
        assert (mr.backends.cudnn.deterministic, mr.backends.cudnn.benchmark) == (True, False)
        assert mr.backends.cudnn.is_available() is False and mr.backends.mps.is_available() is False
    finally:
        cudnn.benchmark, cudnn.deterministic = old


def test_load_accepts_torch_load_keywords_inference_mode_and_clip_grad_value(tmp_path, torch) -> None:
    """The official CIFAR-10 tutorial's ``net.load_state_dict(torch.load(PATH, weights_only=True))``,
    ``torch.inference_mode()`` and ``nn.utils.clip_grad_value_``, as torch runs them."""
    net = mr.nn.Linear(3, 2)
    path = tmp_path / "net.npz"
    mr.save(net.state_dict(), path)
    other = mr.nn.Linear(3, 2)
    other.load_state_dict(mr.load(path, weights_only=True))
    other.load_state_dict(mr.load(path, map_location="cpu", weights_only=True))
    other.load_state_dict(mr.load(path, map_location=mr.device("cpu")))
    np.testing.assert_array_equal(other.weight.numpy(), net.weight.numpy())

    x = mr.randn(4, 3, requires_grad=True)
    with mr.inference_mode():
        assert not net(x).requires_grad
    with mr.inference_mode(False):
        assert net(x).requires_grad

    @mr.inference_mode()
    def predict(v):
        return net(v)

    @mr.inference_mode
    def predict_bare(v):
        return net(v)

    assert not predict(x).requires_grad and not predict_bare(x).requires_grad and mr.is_grad_enabled()

    rng = np.random.default_rng(0)
    w = rng.standard_normal((5, 4))
    grad = 3 * rng.standard_normal((5, 4))
    p, tp = mr.nn.Parameter(mr.tensor(w)), torch.nn.Parameter(torch.tensor(w))
    p.grad, tp.grad = mr.tensor(grad.copy()), torch.tensor(grad.copy())
    mr.nn.utils.clip_grad_value_([p], 1.5, foreach=None)
    torch.nn.utils.clip_grad_value_([tp], 1.5, foreach=None)
    np.testing.assert_array_equal(p.grad.numpy(), tp.grad.numpy())
    assert np.abs(p.grad.numpy()).max() == 1.5
