"""Keep docs/backward.md true to the code: refresh what the guide quotes and computes, or check it.

    python tools/sync_guide.py           rewrite the generated parts of the guide in place
    python tools/sync_guide.py --check   change nothing; list what is stale (exit 1 if anything is)

The guide is hand-written prose around three kinds of generated text, each between markers:

- docstring blocks, a verbatim copy of an op's docstring (the source of truth for its backward):
      <!-- docstring minires.ops.conv.Conv2d -->  ```text ... ```  <!-- end docstring -->
- worked examples, ```pycon blocks of ``>>>`` statements whose printed output is what minires prints
  now (rewritten here by running them in order, in one namespace; checked like doctests);
- computed blocks, Markdown made by a function of this file from a measurement:
      <!-- computed residual_table -->  ...  <!-- end computed -->

It also checks (and leaves to be edited by hand) README.md's sentence on the gradient-flow ratios.

tests/test_guide.py runs the same checks (numbers compared to within 2 units of their last printed digit,
so that the last digit of a float may differ between machines), plus the section and link checks.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import doctest
import functools
import importlib
import importlib.util
import io
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "backward.md"
README = ROOT / "README.md"

DOCSTRING_BLOCK = re.compile(
    r"<!-- docstring (?P<target>[\w.]+) -->\n```text\n(?P<body>.*?)\n?```\n<!-- end docstring -->", re.S
)
FILE_BLOCK = re.compile(
    r"<!-- file (?P<path>[\w/.]+) -->\n```(?P<lang>\w+)\n(?P<body>.*?)\n?```\n<!-- end file -->", re.S
)
EXERCISE_ROW = re.compile(r"^\| `(?P<name>\w+)` \|", re.M)
COMPUTED_BLOCK = re.compile(r"<!-- computed (?P<name>\w+) -->\n(?P<body>.*?)<!-- end computed -->", re.S)
PYCON_BLOCK = re.compile(r"^```pycon\n(?P<body>.*?)^```$", re.S | re.M)
HEADING = re.compile(r"^(?P<hashes>#{2,4}) (?P<title>.+)$")
NAME_IN_HEADING = re.compile(r"`([A-Za-z_][\w.]*)`")
CODE_LINK = re.compile(r"\[`(?P<name>[\w.]+)` in (?P<label>[\w/.]+)\]\((?P<target>[^)#\s]+)\)")
ROW_LINK = re.compile(r"\[row `(?P<row>\w+)` in tests/op_table\.py\]\(\.\./tests/op_table\.py\)")
ANY_LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


# ----- docstring blocks -------------------------------------------------------------------------------
def resolve(dotted: str) -> Any:
    """``minires.ops.conv.Conv2d`` -> the class; ``minires.ops.broadcast`` -> the module."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(f"cannot resolve {dotted!r}")


def dotted_name(obj: Any) -> str:
    """The inverse of ``resolve``: ``minires.ops.conv.Conv2d``."""
    if isinstance(obj, ModuleType):
        return obj.__name__
    return f"{obj.__module__}.{obj.__qualname__}"


def current_docstring(dotted: str) -> str:
    from minires.explain import docstring

    return docstring(resolve(dotted))


def refresh_docstrings(text: str) -> str:
    def sub(m: re.Match) -> str:
        body = current_docstring(m["target"])
        return f"<!-- docstring {m['target']} -->\n```text\n{body}\n```\n<!-- end docstring -->"

    return DOCSTRING_BLOCK.sub(sub, text)


def stale_docstrings(text: str) -> list[str]:
    """One line per docstring block that is no longer the op's docstring, verbatim."""
    out = []
    for m in DOCSTRING_BLOCK.finditer(text):
        if m["body"].rstrip("\n") != current_docstring(m["target"]):
            out.append(f"docstring block {m['target']} differs from the docstring in the code")
    return out


# ----- numbers that may differ in their last printed digit ----------------------------------------------
def _last_digit_unit(token: str) -> float:
    """The value of one unit in the last printed digit: 0.25 -> 0.01, 8.54e-11 -> 1e-13, 12 -> 1."""
    mantissa, _, exponent = token.lower().partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return 10.0 ** (-decimals + (int(exponent) if exponent else 0))


def same_up_to_last_digits(expected: str, got: str, units: float = 2.0) -> bool:
    """True when the texts are equal but for whitespace and numbers that differ by at most ``units``
    units of their last printed digit. NumPy drops trailing zeros (1.4 is 1.4000 at 4 decimals), so a
    digit's unit is taken as at most 1e-4 of the value (1e-4 below 1): the precision the guide prints."""
    if expected == got:
        return True
    e_nums, g_nums = NUMBER.findall(expected), NUMBER.findall(got)
    e_text = re.sub(r"\s+", "", NUMBER.sub("#", expected))  # the alignment of printed arrays may change
    g_text = re.sub(r"\s+", "", NUMBER.sub("#", got))
    if e_text != g_text or len(e_nums) != len(g_nums):
        return False
    for a, b in zip(e_nums, g_nums, strict=True):
        # NumPy drops trailing zeros (1.4 is 1.4000 at 4 decimals): at most 1e-4 of the value, or 1e-4
        unit = min(_last_digit_unit(a), _last_digit_unit(b), 1e-4 * max(1.0, abs(float(a)), abs(float(b))))
        if abs(float(a) - float(b)) > units * unit:
            return False
    return True


# ----- worked examples (pycon blocks) -------------------------------------------------------------------
@dataclass
class Example:
    source: str  # without prompts, ending in a newline
    want: str  # the printed output the guide shows
    line: int  # 1-based line of the >>> in the guide


def pycon_examples(text: str) -> list[tuple[re.Match, list[Example]]]:
    """Every ```pycon block and its examples (parsed by doctest's parser)."""
    parser = doctest.DocTestParser()
    out = []
    for m in PYCON_BLOCK.finditer(text):
        first_line = text.count("\n", 0, m.start("body")) + 1
        examples = [
            Example(e.source, e.want, first_line + e.lineno)
            for e in parser.parse(m["body"])
            if isinstance(e, doctest.Example)
        ]
        out.append((m, examples))
    return out


def run_example(source: str, namespace: dict[str, Any]) -> str:
    """Run one interactive statement as the Python prompt would; what it prints (expression values too)."""
    buffer = io.StringIO()
    code = compile(source, "<docs/backward.md>", "single")
    with contextlib.redirect_stdout(buffer):
        exec(code, namespace)  # noqa: S102 - the guide's own examples
    return buffer.getvalue()


def run_examples(text: str) -> list[tuple[Example, str]]:
    """(example, what it prints now) for every example of the guide, run in order in one namespace;
    NumPy's print options are restored afterwards."""
    namespace: dict[str, Any] = {"__name__": "__guide__"}
    results = []
    with np.printoptions():
        for _, examples in pycon_examples(text):
            for ex in examples:
                results.append((ex, run_example(ex.source, namespace)))
    return results


def stale_examples(text: str) -> list[str]:
    out = []
    for ex, got in run_examples(text):
        if not same_up_to_last_digits(ex.want, got):
            out.append(
                f"docs/backward.md:{ex.line}: example prints\n{got}instead of\n{ex.want}  for: {ex.source}"
            )
    return out


def _format_example(ex: Example, output: str) -> str:
    lines = ex.source.rstrip("\n").split("\n")
    prompt = [">>> " + lines[0]] + ["... " + line if line else "..." for line in lines[1:]]  # as ruff writes
    return "\n".join(prompt) + "\n" + output


def refresh_examples(text: str) -> str:
    outputs = iter(got for _, got in run_examples(text))
    pieces, last = [], 0
    for m, examples in pycon_examples(text):
        body = "".join(_format_example(ex, next(outputs)) for ex in examples)
        pieces += [text[last : m.start("body")], body]
        last = m.end("body")
    return "".join(pieces) + text[last:]


# ----- computed blocks -----------------------------------------------------------------------------------
def _gradient_flow() -> ModuleType:
    """examples/gradient_flow.py as the module ``gradient_flow`` (examples/ is not a package)."""
    path = ROOT / "examples" / "gradient_flow.py"
    module = sys.modules.get("gradient_flow")
    if module is None or Path(module.__file__).resolve() != path:
        spec = importlib.util.spec_from_file_location("gradient_flow", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["gradient_flow"] = module  # before running it: its dataclass looks itself up there
        spec.loader.exec_module(module)
    return module


@functools.cache
def _norms_at_init(gf: ModuleType, residual: bool, batch_norm: bool, he_init: bool = False) -> list[float]:
    """||dL/dz|| per conv layer of gradient_flow's default net at its initialization, in float64, on the
    batch of its first training step (so that the ratios are those that ``python examples/gradient_flow.py``
    prints in its "@1" columns, in float32)."""
    import minires as mr
    import minires.nn as nn

    net = gf.build_net(gf.BLOCKS, gf.CHANNELS, residual, batch_norm, gf.SEED).double()
    if he_init:
        for conv in gf.conv_layers(net):
            nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
    images, labels = gf.first_batch(*gf.synthetic_data(gf.N_IMAGES, gf.SIZE, gf.SEED), gf.BATCH_SIZE, gf.SEED)
    x = mr.tensor(images.astype(np.float64))  # the batch of the script's step 1, in float64
    return list(gf.gradient_norms_at_init(net, x, mr.tensor(labels)))


def first_to_last_ratios() -> tuple[float, float]:
    """Layer 1's ||dL/dz|| over layer 17's at init: (plain net, with skips), as the script prints them."""
    gf = _gradient_flow()
    plain, res = _norms_at_init(gf, False, False), _norms_at_init(gf, True, False)
    return plain[0] / plain[-1], res[0] / res[-1]


README_RATIOS = re.compile(
    r"layers is (?P<plain>[\d.]+e-\d+) of the one at the last in the plain net, and (?P<res>[\d.]+) with skip"
)


def stale_readme(text: str | None = None) -> list[str]:
    """The README's sentence on the gradient-flow ratios against what examples/gradient_flow.py prints."""
    text = README.read_text() if text is None else text
    m = README_RATIOS.search(text)
    if m is None:
        return [
            "README.md: no sentence 'layers is X of the one at the last in the plain net, and Y with skip'"
        ]
    out = []
    for token, value in zip((m["plain"], m["res"]), first_to_last_ratios(), strict=True):
        if abs(float(token) - value) > 2 * _last_digit_unit(token):
            out.append(f"README.md: the gradient-flow ratio {token} is {value:.3g} now")
    return out


def residual_table() -> str:
    """Per conv layer ||dL/dz|| at init, plain net against the same net with skips (gradient_flow's)."""
    gf = _gradient_flow()
    plain, res = _norms_at_init(gf, False, False), _norms_at_init(gf, True, False)
    n = len(plain)
    rows = [
        "| conv layer | plain net | same net with skip connections |",
        "|---:|---:|---:|",
    ]
    for i in range(n - 1, -1, -2):
        where = " (next to the loss)" if i == n - 1 else " (next to the input)" if i == 0 else ""
        rows.append(f"| {i + 1}{where} | {plain[i]:.3e} | {res[i]:.3e} |")
    rows.append(f"| layer 1 / layer {n} | {plain[0] / plain[-1]:.2e} | {res[0] / res[-1]:.2e} |")
    per_layer = [(r[0] / r[-1]) ** (1 / (n - 1)) for r in (plain, res)]
    rows.append(
        f"| factor per layer, (layer 1 / layer {n})^(1/{n - 1}) | {per_layer[0]:.3f} | {per_layer[1]:.3f} |"
    )
    return "\n".join(rows) + "\n"


def init_variants_table() -> str:
    """The first/last ratio of ||dL/dz|| at init under three setups of the same nets."""
    gf = _gradient_flow()
    rows = [
        "| setup (same 17 conv layers) | plain: layer 1 / layer 17 | with skips: layer 1 / layer 17 |",
        "|---|---:|---:|",
    ]
    setups = (
        ("PyTorch's default init (as above)", False, False),
        ("He (Kaiming normal, fan_in) init", False, True),
        ("default init, batch norm after each conv", True, False),
    )
    for label, batch_norm, he_init in setups:
        plain = _norms_at_init(gf, False, batch_norm, he_init)
        res = _norms_at_init(gf, True, batch_norm, he_init)
        rows.append(f"| {label} | {plain[0] / plain[-1]:.2e} | {res[0] / res[-1]:.2e} |")
    return "\n".join(rows) + "\n"


def zigzag_table() -> str:
    """The ResNet's ||dL/dz|| at init on its last six conv layers: main path (odd) against branch (even)."""
    gf = _gradient_flow()
    res = np.array(_norms_at_init(gf, True, False))
    rows = ["| conv layer | where its output goes | with skips: norm of dL/dz |", "|---:|---|---:|"]
    for i in range(len(res) - 1, len(res) - 7, -1):
        where = "added to the skip (main path)" if i % 2 == 0 else "ReLU, then the block's 2nd conv (branch)"
        rows.append(f"| {i + 1} | {where} | {res[i]:.3e} |")
    ratio = np.exp(np.log(res[1::2]).mean() - np.log(res[0::2]).mean())
    rows.append(f"| all | even layers / odd layers, geometric means | {ratio:.3f} |")
    return "\n".join(rows) + "\n"


def plain_factor_table() -> str:
    """The plain net's per-layer factor ||dL/dz_(l-1)|| / ||dL/dz_l|| at init, predicted and measured."""
    import minires as mr

    gf = _gradient_flow()
    net = gf.build_net(gf.BLOCKS, gf.CHANNELS, False, False, gf.SEED).double()
    convs = gf.conv_layers(net)
    outputs: dict[int, np.ndarray] = {}
    for i, conv in enumerate(convs):
        conv.register_forward_hook(lambda m, inp, out, i=i: outputs.__setitem__(i, out.numpy()))
    images, labels = gf.first_batch(*gf.synthetic_data(gf.N_IMAGES, gf.SIZE, gf.SEED), gf.BATCH_SIZE, gf.SEED)
    net(mr.tensor(images.astype(np.float64)))
    norms = np.array(_norms_at_init(gf, False, False))
    active = np.array([(outputs[i - 1] > 0).mean() for i in range(1, len(convs))])  # ReLU's keep rate
    gain = np.array([c.weight.numpy().shape[0] * 9 * c.weight.numpy().var() for c in convs[1:]])
    predicted = np.sqrt(gain * active)
    measured = norms[:-1] / norms[1:]
    geo = float(np.exp(np.log(measured).mean()))
    rows = [
        "| per-layer factor of the plain net | value |",
        "|---|---:|",
        f"| predicted, variance 1/(3 fan_in) and half the units active: 1/sqrt(6) | {1 / np.sqrt(6):.3f} |",
        f"| fan_out * var(w) of the drawn weights, mean of layers 2-17 (1/3 expected) | {gain.mean():.3f} |",
        f"| fraction of the ReLU's inputs > 0, lowest and highest layer | {active.min():.2f}, "
        f"{active.max():.2f} |",
        f"| predicted with both measured, sqrt(fan_out var(w) active), geometric mean | "
        f"{np.exp(np.log(predicted).mean()):.3f} |",
        f"| measured, geometric mean of the 16 factors (the table's last row) | {geo:.3f} |",
    ]
    return "\n".join(rows) + "\n"


def _pictures() -> ModuleType:
    """tools/draw_guide_pictures.py as the module ``draw_guide_pictures``."""
    path = ROOT / "tools" / "draw_guide_pictures.py"
    module = sys.modules.get("draw_guide_pictures")
    if module is None or Path(module.__file__).resolve() != path:
        spec = importlib.util.spec_from_file_location("draw_guide_pictures", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["draw_guide_pictures"] = module
        spec.loader.exec_module(module)
    return module


def basic_block_table() -> str:
    """||dL/d(node)|| through one BasicBlock's backward, identity and projection shortcut side by side."""
    pictures = _pictures()
    identity = {node: (what, value) for node, what, value in pictures.basic_block_trace(False)}
    projection = {node: (what, value) for node, what, value in pictures.basic_block_trace(True)}
    order = list(projection)  # the projection's rows include the identity's
    rows = [
        "| tensor (forward name) | its gradient comes from | identity shortcut | projection shortcut |",
        "|---|---|---:|---:|",
    ]
    for node in order:
        what = projection[node][0] if node not in identity else identity[node][0]
        if node == "x, through the shortcut":
            what = "identity: y_pre's gradient, unchanged; projection: conv_sc backward"
        cells = [f"{table[node][1]:.4f}" if node in table else "" for table in (identity, projection)]
        rows.append(f"| {node} | {what} | {cells[0]} | {cells[1]} |")
    return "\n".join(rows) + "\n"


COMPUTED: dict[str, Callable[[], str]] = {
    "residual_table": residual_table,
    "init_variants_table": init_variants_table,
    "basic_block_table": basic_block_table,
    "zigzag_table": zigzag_table,
    "plain_factor_table": plain_factor_table,
}


def refresh_computed(text: str) -> str:
    def sub(m: re.Match) -> str:
        return f"<!-- computed {m['name']} -->\n{COMPUTED[m['name']]()}<!-- end computed -->"

    return COMPUTED_BLOCK.sub(sub, text)


def stale_computed(text: str) -> list[str]:
    out = []
    for m in COMPUTED_BLOCK.finditer(text):
        if m["name"] not in COMPUTED:
            out.append(f"computed block {m['name']!r}: no such function in tools/sync_guide.py COMPUTED")
        elif not same_up_to_last_digits(m["body"], COMPUTED[m["name"]]()):
            out.append(f"computed block {m['name']} differs from what it computes now")
    return out


# ----- quoted files and the exercises ------------------------------------------------------------------
def refresh_files(text: str) -> str:
    """Copy each quoted file (``<!-- file PATH -->`` blocks) from the repository, verbatim."""

    def sub(m: re.Match) -> str:
        body = (ROOT / m["path"]).read_text().rstrip("\n")
        return f"<!-- file {m['path']} -->\n```{m['lang']}\n{body}\n```\n<!-- end file -->"

    return FILE_BLOCK.sub(sub, text)


def stale_files(text: str) -> list[str]:
    out = []
    for m in FILE_BLOCK.finditer(text):
        path = ROOT / m["path"]
        if not path.exists():
            out.append(f"file block {m['path']}: no such file")
        elif m["body"].rstrip("\n") != path.read_text().rstrip("\n"):
            out.append(f"file block {m['path']} differs from the file")
    return out


def exercises_section(text: str) -> str:
    """The text of the section "## 11. Exercises", up to the next ## heading."""
    start = text.find("\n## 11. Exercises")
    if start < 0:
        return ""
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else len(text)]


def stale_exercises(text: str) -> list[str]:
    """The exercises listed (rows "| `name` |") against ``python -m minires.exercises --list``, in order."""
    from minires.exercises import names

    listed = [m["name"] for m in EXERCISE_ROW.finditer(exercises_section(text))]
    if listed != names():
        return [
            f"section 11 lists the exercises {listed}; python -m minires.exercises --list gives {names()}"
        ]
    return []


# ----- sections and links --------------------------------------------------------------------------------
@dataclass
class Section:
    names: list[str]  # the backticked names in the heading: op-table rows (or registry entries)
    heading: str
    line: int
    body: str


def sections(text: str) -> list[Section]:
    """The op sections: headings (##, ### or ####) that name ops in backticks, each up to the next such
    heading (headings inside code blocks do not count)."""
    lines = text.split("\n")
    out: list[Section] = []
    fence = False
    starts: list[tuple[int, str]] = []
    for i, line in enumerate(lines):
        if line.startswith("```"):
            fence = not fence
        elif not fence and HEADING.match(line):
            starts.append((i, line))
    for k, (i, line) in enumerate(starts):
        end = starts[k + 1][0] if k + 1 < len(starts) else len(lines)
        names = NAME_IN_HEADING.findall(HEADING.match(line)["title"])
        if names:
            out.append(Section(names, line, i + 1, "\n".join(lines[i + 1 : end])))
    return out


def defines(path: Path, name: str) -> bool:
    """Whether the Python file ``path`` defines ``name`` (a class or function; ``Class.method`` too)."""
    scope: list[ast.stmt] = ast.parse(path.read_text()).body
    for part in name.split("."):
        found = [
            node
            for node in scope
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == part
        ]
        if not found:
            return False
        scope = found[0].body
    return True


def prose(text: str) -> str:
    """``text`` without its fenced code blocks and double-backtick code spans, which hold no links."""
    text = re.sub(r"^```.*?^```$", "", text, flags=re.S | re.M)
    return re.sub(r"``.+?``", "", text)


def bad_links(text: str, base: Path = GUIDE.parent) -> list[str]:
    """Relative links that point nowhere, and code links whose named class or function is not in the file."""
    out = []
    text = prose(text)
    for m in ANY_LINK.finditer(text):
        target = m["target"]
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (base / target.split("#")[0]).resolve()
        if not path.exists():
            out.append(f"link to {target}: no such file")
    for m in CODE_LINK.finditer(text):
        path = (base / m["target"]).resolve()
        relative = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else None
        if m["label"] != relative:
            out.append(f"link [{m['name']} in {m['label']}] points at {m['target']}, another file")
        elif path.suffix != ".py" or not path.exists() or not defines(path, m["name"]):
            out.append(f"link [{m['name']} in {m['label']}]: {m['label']} defines no {m['name']}")
    return out


# ----- the command line ----------------------------------------------------------------------------------
def stale(text: str) -> list[str]:
    return (
        stale_docstrings(text)
        + stale_files(text)
        + stale_exercises(text)
        + stale_computed(text)
        + stale_examples(text)
        + bad_links(text)
        + stale_readme()
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="change nothing; list what is stale")
    args = p.parse_args(argv)
    text = GUIDE.read_text()
    if args.check:
        problems = stale(text)
        for line in problems:
            print(line)
        print(f"{len(problems)} problem(s) in {GUIDE.relative_to(ROOT)}")
        return 1 if problems else 0
    new = refresh_examples(refresh_computed(refresh_files(refresh_docstrings(text))))
    if new != text:
        GUIDE.write_text(new)
        print(f"updated {GUIDE.relative_to(ROOT)}")
    else:
        print(f"{GUIDE.relative_to(ROOT)} is up to date")
    for line in bad_links(new):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
