"""``mr.utils.make_dot``: the DOT text has one node per Function, leaf and output and one edge per input of
each Function, checked against an independent walk of a whole d2l ResNet-18's graph; it renders with
Graphviz's ``dot`` (required in CI), atomically, and says which package to install without it."""

from __future__ import annotations

import os
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import minires as mr
from minires.function import Function
from minires.utils import dot

NODE = re.compile(r'^\s+(\w+) \[label="((?:[^"\\]|\\.)*)"(?: fillcolor=(\w+))?\]$')
EDGE = re.compile(r"^\s+(\w+) -> (\w+)$")


def parse(source: str) -> tuple[dict[str, tuple[str, str | None]], list[tuple[str, str]]]:
    """The DOT text's nodes (id -> (label, colour)) and edges (tail, head); every other line must be the
    header or the closing brace."""
    nodes: dict[str, tuple[str, str | None]] = {}
    edges: list[tuple[str, str]] = []
    lines = source.splitlines()
    assert lines[0] == "digraph {" and lines[-1] == "}"
    for line in lines[1:-1]:
        if m := NODE.match(line):
            assert m[1] not in nodes, f"node {m[1]} declared twice"
            nodes[m[1]] = (m[2].replace("\\n", "\n"), m[3])
        elif m := EDGE.match(line):
            edges.append((m[1], m[2]))
        else:
            assert line.lstrip().startswith(("graph ", "node ")), f"unexpected DOT line {line!r}"
    return nodes, edges


def walk(out: mr.Tensor, names: dict[int, str]) -> tuple[Counter, Counter]:
    """Labels of the nodes and of the edges' ends, found by a breadth-first walk of ``grad_fn`` /
    ``next_nodes`` written here, independently of minires.autograd's topological order."""

    def label(obj: object) -> str:
        if isinstance(obj, Function):
            return type(obj).__name__ + "Backward"
        shape = "(" + ", ".join(map(str, obj.shape)) + ")"
        return f"{names[id(obj)]}\n{shape}" if id(obj) in names else shape

    seen = {id(out.grad_fn): out.grad_fn}
    queue = [out.grad_fn]
    edges: Counter = Counter()
    while queue:
        fn = queue.pop(0)
        for nxt in fn.next_nodes:
            if nxt is None:
                continue
            edges[(label(fn), label(nxt))] += 1  # the gradient's way: consumer to producer
            if id(nxt) not in seen:
                seen[id(nxt)] = nxt
                if isinstance(nxt, Function):
                    queue.append(nxt)
    out_label = "(" + ", ".join(map(str, out.shape)) + ")"
    edges[(out_label, label(out.grad_fn))] += 1
    nodes = Counter(label(o) for o in seen.values()) + Counter([out_label])
    return nodes, edges


@pytest.fixture(scope="module")
def resnet_graph() -> tuple[mr.nn.Module, mr.Tensor]:
    mr.manual_seed(0)
    model = mr.models.d2l_resnet18()
    loss = mr.nn.functional.cross_entropy(model(mr.randn(2, 1, 32, 32)), mr.tensor([1, 7]))
    return model, loss


def test_the_resnet_graph_has_every_function_leaf_and_edge(resnet_graph) -> None:
    model, loss = resnet_graph
    params = dict(model.named_parameters())
    nodes, edges = parse(mr.utils.make_dot(loss, params=params).source)
    want_nodes, want_edges = walk(loss, {id(p): n for n, p in params.items()})
    got_edges = Counter((nodes[a][0], nodes[b][0]) for a, b in edges)
    assert Counter(label for label, _ in nodes.values()) == want_nodes
    assert got_edges == want_edges  # the same ends, in the same direction, as often
    # every parameter is one light-blue leaf, named; 20 convolutions (stem, 16 in blocks, 3 shortcuts)
    leaves = [label for label, colour in nodes.values() if colour == "lightblue"]
    assert sorted(label.split("\n")[0] for label in leaves) == sorted(params)
    assert sum(label == "Conv2dBackward" for label, _ in nodes.values()) == 20
    assert [label for label, colour in nodes.values() if colour == "darkolivegreen1"] == ["()"]
    print(f"d2l_resnet18 graph: {len(nodes)} nodes, {len(edges)} edges")


def test_arrows_run_the_way_the_gradient_flows() -> None:
    """The issue's direction (the gradient's): output -> op -> ... -> leaf, torchviz's reversed; w used
    twice gives two edges."""
    w = mr.randn(3, requires_grad=True)
    y = (w * w).sum()
    nodes, edges = parse(mr.utils.make_dot(y, params={"w": w}).source)
    by_label = {label.split("\n")[0]: node for node, (label, _) in nodes.items()}
    assert Counter(edges) == Counter(
        {
            (by_label["MulBackward"], by_label["w"]): 2,
            (by_label["SumBackward"], by_label["MulBackward"]): 1,
            (by_label["()"], by_label["SumBackward"]): 1,
        }
    )
    assert nodes[by_label["w"]] == ("w\n(3)", "lightblue")


def test_show_saved_lists_each_saved_shape_then_freed() -> None:
    x = mr.randn(2, 3, 5, 5, requires_grad=True)
    w = mr.randn(4, 3, 3, 3, requires_grad=True)
    y = mr.nn.functional.conv2d(x, w, padding=1).relu().sum()
    (label,) = [
        lab for lab, _ in parse(mr.utils.make_dot(y, show_saved=True).source)[0].values() if "Conv2d" in lab
    ]
    assert "x: (2, 3, 5, 5) float32" in label and "w: (4, 3, 3, 3) float32" in label
    (relu,) = [
        lab for lab, _ in parse(mr.utils.make_dot(y, show_saved=True).source)[0].values() if "ReLU" in lab
    ]
    assert relu == "ReLUBackward\ny: (2, 4, 5, 5) float32"
    assert "y: (2, 4, 5, 5)" not in mr.utils.make_dot(y).source  # only when asked
    y.backward()
    assert "y: freed" in mr.utils.make_dot(y, show_saved=True).source
    attrs = mr.utils.make_dot(y, show_attrs=True).source
    assert re.search(r"Conv2dBackward\\n.*stride: \(1, 1\)", attrs)


def test_unnamed_leaves_show_their_shape_and_a_leaf_output_is_one_node() -> None:
    a = mr.randn(2, 2, requires_grad=True)
    nodes, edges = parse(mr.utils.make_dot(a).source)
    assert list(nodes.values()) == [("(2, 2)", "lightblue")] and edges == []
    with pytest.raises(TypeError, match=r"params\['w'\] is a list"):
        mr.utils.make_dot(a * 2, params={"w": [1.0]})


def test_without_dot_render_names_the_package_and_source_still_works(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(dot.shutil, "which", lambda name: None)
    g = mr.utils.make_dot((mr.randn(3, requires_grad=True) * 2).sum())
    assert g.source.startswith("digraph {")
    assert g._repr_svg_() is None  # a notebook falls back to the repr
    with pytest.raises(mr.utils.GraphvizNotFoundError, match=r"`dot`.*install the package `graphviz`"):
        g.render(tmp_path / "g.svg")
    assert list(tmp_path.iterdir()) == []


def _require_dot() -> None:
    if shutil.which("dot") is None:
        message = "Graphviz's `dot` is not installed (apt-get install graphviz)"
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(f"{message}; CI must render the graph (.ci/run installs it)", pytrace=False)
        pytest.skip(message)


def test_render_svg_and_png_of_the_resnet(resnet_graph, tmp_path: Path) -> None:
    _require_dot()
    model, loss = resnet_graph
    g = mr.utils.make_dot(loss, params=dict(model.named_parameters()), show_saved=True)
    svg = Path(g.render(tmp_path / "resnet.svg"))
    assert svg == tmp_path / "resnet.svg"
    text = svg.read_text()
    assert (
        "<svg" in text and "0.0.weight" in text and text.count('class="node"') == g.source.count(" [label=")
    )
    png = Path(g.render(tmp_path / "resnet", format="png"))
    assert png == tmp_path / "resnet.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resnet.png", "resnet.svg"]  # no temporary left
    assert "<svg" in g._repr_svg_()


def test_a_failing_dot_leaves_the_old_file(tmp_path: Path) -> None:
    _require_dot()
    target = tmp_path / "g.svg"
    target.write_text("old")
    with pytest.raises(RuntimeError, match=r"`dot -Tsvg` failed"):
        dot.DotGraph("digraph { this is not DOT").render(target)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["g.svg"]
    with pytest.raises(ValueError, match="format must be one of"):
        dot.DotGraph("digraph {}").render(tmp_path / "g", format="jpeg")
    np.testing.assert_equal(len(list(tmp_path.iterdir())), 1)
