"""Draw the pictures of docs/backward.md from real arrays, and trace one BasicBlock's backward.

    python tools/draw_guide_pictures.py          write docs/basic_block.svg, docs/basic_block_projection.svg
                                                 (Graphviz's `dot`) and docs/im2col.png (matplotlib)

- The graphs are ``mr.utils.make_dot`` of one ``BasicBlock`` (``minires/models/blocks.py``), without and
  with the projection shortcut (1x1 stride-2 conv + BN), built by ``basic_block``; tests/test_guide.py
  checks that the nodes, labels and edges of the committed SVGs are what make_dot draws now.
- ``basic_block_trace`` is the table of the guide's BasicBlock section (a computed block of
  tools/sync_guide.py): ||dL/d(node)|| at each node of the block's backward, L = <v, y> for a fixed v.
- docs/im2col.png: im2col and col2im of a small image, the numbers printed in each cell.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

import minires as mr
import minires.nn as nn
from minires.models.blocks import BasicBlock
from minires.ops.im2col import col2im, im2col

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
GRAPHS = {False: DOCS / "basic_block.svg", True: DOCS / "basic_block_projection.svg"}
IM2COL = DOCS / "im2col.png"
SEED = 0


# ----- one BasicBlock ------------------------------------------------------------------------------------
def basic_block(projection: bool) -> tuple[BasicBlock, mr.Tensor, np.ndarray]:
    """A BasicBlock in training mode, float64, weights from PyTorch's default init (seed SEED), its input
    x (2, 4, 8, 8) and a fixed v of its output's shape (L = <v, y>). Without projection: 4 -> 4 channels,
    stride 1, identity shortcut; with it: 4 -> 8 channels, stride 2, shortcut 1x1 conv (stride 2) + BN, as
    torchvision builds it."""
    mr.manual_seed(SEED)
    if projection:
        shortcut = nn.Sequential(nn.Conv2d(4, 8, 1, stride=2, bias=False), nn.BatchNorm2d(8))
        block = BasicBlock(4, 8, stride=2, downsample=shortcut)
    else:
        block = BasicBlock(4, 4)
    block = block.double().train()
    rng = np.random.default_rng(SEED)
    x = mr.tensor(rng.standard_normal((2, 4, 8, 8)), requires_grad=True)
    out_shape = (2, 8, 4, 4) if projection else (2, 4, 8, 8)
    return block, x, rng.standard_normal(out_shape)


def basic_block_graph(projection: bool) -> Any:
    """make_dot of the block's output, its parameters and x named: the separate ops' graph, as PyTorch's
    block records it (``mr.fuse_norm_relu(False)``; by default a BatchNormReLUBackward node stands for
    each batch norm -> (add ->) ReLU, docs/backward.md section 4)."""
    block, x, _ = basic_block(projection)
    with mr.fuse_norm_relu(False):
        y = block(x)
    return mr.utils.make_dot(y, params={"x": x, **dict(block.named_parameters())})


def basic_block_trace(projection: bool) -> list[tuple[str, str, float]]:
    """(node, what arrives there, ||dL/d(that tensor)||) in backward order, for L = <v, y>.

    Forward hooks keep each layer's output (and the sum that enters the last ReLU) and retain their
    gradients; full backward hooks on conv1 and on the shortcut's conv give the two parts of dL/dx."""
    block, x, v = basic_block(projection)
    block.relu.inplace = False  # in place, each ReLU's input would be its output: the trace needs both
    kept: dict[str, mr.Tensor] = {}
    parts: dict[str, mr.Tensor] = {}
    relu_calls: list[int] = []

    def keep(name: str) -> Any:
        def hook(module: nn.Module, inputs: tuple, output: mr.Tensor) -> None:
            if module is block.relu:
                relu_calls.append(1)
                if len(relu_calls) == 2:  # the ReLU after the addition: its input is the sum
                    kept["add"] = inputs[0]
                    inputs[0].retain_grad()
                name_ = "relu1" if len(relu_calls) == 1 else "relu2"
                kept[name_] = output
            else:
                kept[name] = output
            output.retain_grad()

        return hook

    def part(name: str) -> Any:
        def hook(module: nn.Module, grad_input: tuple, grad_output: tuple) -> None:
            parts[name] = grad_input[0]

        return hook

    for name in ("conv1", "bn1", "relu", "conv2", "bn2"):
        getattr(block, name).register_forward_hook(keep(name))
    block.conv1.register_full_backward_hook(part("branch"))
    if projection:
        block.downsample[0].register_forward_hook(keep("sc_conv"))
        block.downsample[1].register_forward_hook(keep("sc_bn"))
        block.downsample[0].register_full_backward_hook(part("shortcut"))
    y = block(x)
    (y * mr.tensor(v)).sum().backward()

    def norm(t: Any) -> float:
        return float(np.linalg.norm(t.numpy() if isinstance(t, mr.Tensor) else t))

    rows = [
        ("y = relu(y_pre)", "v = dL/dy", norm(v)),
        ("y_pre = u2 + sc(x)", "v * [y_pre > 0]", norm(kept["add"].grad)),
        ("u2 = bn2(z2)", "the same: add passes it on", norm(kept["bn2"].grad)),
    ]
    if projection:
        rows += [
            ("sc(x) = bn_sc(z_sc)", "the same: add passes it on", norm(kept["sc_bn"].grad)),
            ("z_sc = conv_sc(x), 1x1", "bn_sc backward", norm(kept["sc_conv"].grad)),
        ]
    rows += [
        ("z2 = conv2(a1)", "bn2 backward", norm(kept["conv2"].grad)),
        ("a1 = relu(u1)", "conv2 backward", norm(kept["relu1"].grad)),
        ("u1 = bn1(z1)", "relu backward", norm(kept["bn1"].grad)),
        ("z1 = conv1(x)", "bn1 backward", norm(kept["conv1"].grad)),
        ("x, through the branch", "conv1 backward", norm(parts["branch"])),
    ]
    shortcut = parts["shortcut"] if projection else kept["add"].grad
    via = "conv_sc backward" if projection else "y_pre's gradient, unchanged"
    rows += [
        ("x, through the shortcut", via, norm(shortcut)),
        ("x (the sum of both)", "x.grad", norm(x.grad)),
    ]
    branch, short = (
        np.asarray(t.numpy() if isinstance(t, mr.Tensor) else t) for t in (parts["branch"], shortcut)
    )
    assert np.allclose(branch + short, x.grad.numpy()), "the two parts do not add up"
    cosine = float((branch * short).sum() / (np.linalg.norm(branch) * np.linalg.norm(short)))
    rows.append(("cos(branch part, shortcut part)", "their angle", cosine))
    return rows


# ----- the SVG's graph, for the test -----------------------------------------------------------------------
def svg_graph(svg: str) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(nodes as (id, label), edges as (from id, to id)) of an SVG that Graphviz's dot drew."""
    unescape = {"&#45;": "-", "&gt;": ">", "&lt;": "<", "&amp;": "&", "&#160;": " "}

    def clean(s: str) -> str:
        for k, val in unescape.items():
            s = s.replace(k, val)
        return s

    nodes, edges = set(), set()
    for m in re.finditer(
        r'<g id="(?:node|edge)\d+" class="(\w+)">\s*<title>(.*?)</title>(.*?)</g>', svg, re.S
    ):
        kind, title, body = m[1], clean(m[2]), m[3]
        if kind == "node":
            texts = [clean(t).strip() for t in re.findall(r"<text[^>]*>(.*?)</text>", body, re.S)]
            nodes.add((title, "\n".join(texts)))
        else:
            a, b = title.split("->")
            edges.add((a, b))
    return nodes, edges


def dot_graph(source: str) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """The same two sets from make_dot's DOT text."""
    nodes = {
        (m[1], m[2].replace("\\n", "\n").replace('\\"', '"'))
        for m in re.finditer(r'^    (\w+) \[label="((?:[^"\\]|\\.)*)"', source, re.M)
    }
    edges = {(m[1], m[2]) for m in re.finditer(r"^    (\w+) -> (\w+)$", source, re.M)}
    return nodes, edges


# ----- im2col and col2im, drawn -------------------------------------------------------------------------
def draw_im2col(path: Path) -> None:
    """Four panels: a 4x4 image, its im2col for a 2x2 kernel at stride 1, col2im of ones (how many patches
    cover each pixel), and col2im of ones for K = 2, S = 2, D = 2 on 6x6 (overlaps and uncovered pixels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)
    cols = im2col(x, 2)[0]  # (4, 9)
    count = col2im(np.ones_like(cols)[None], x.shape, 2)[0, 0]  # (4, 4)
    dilated = col2im(np.ones((1, 4, 4)), (1, 1, 6, 6), 2, stride=2, dilation=2)[0, 0]  # (6, 6)
    panels = [
        (x[0, 0], "x (1, 1, 4, 4)\npatch (0, 0) framed", "0"),
        (cols, "cols = im2col(x, K=2): (K_H K_W, O_H O_W) = (4, 9)\nrow (k, l), column (i, j)", "0"),
        (count, "col2im(ones): patches covering\neach pixel (K=2, S=1)", "0"),
        (dilated, "col2im(ones), K=2, S=2, D=2, 6x6:\n0 = in no window (dx = 0)", "0"),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.4), gridspec_kw={"width_ratios": [4, 9, 4, 6]})
    for ax, (a, title, _) in zip(axes, panels, strict=True):
        ax.imshow(a, cmap="Blues", vmin=0, vmax=a.max() * 1.3)
        for (i, j), val in np.ndenumerate(a):
            ax.text(j, i, f"{val:g}", ha="center", va="center", fontsize=9)
        ax.set_xticks(range(a.shape[1]))
        ax.set_yticks(range(a.shape[0]))
        ax.set_title(title, fontsize=9)
    axes[0].add_patch(plt.Rectangle((-0.5, -0.5), 2, 2, fill=False, edgecolor="tab:red", linewidth=2))
    axes[1].add_patch(plt.Rectangle((-0.5, -0.5), 1, 4, fill=False, edgecolor="tab:red", linewidth=2))
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.parse_args(argv)
    for projection, path in GRAPHS.items():
        basic_block_graph(projection).render(path)
        print(f"wrote {path.relative_to(ROOT)}")
    draw_im2col(IM2COL)
    print(f"wrote {IM2COL.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
