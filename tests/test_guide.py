"""docs/backward.md against the code: sections, links, quoted docstrings, worked examples, measured tables.

The checks themselves live in tools/sync_guide.py (``python tools/sync_guide.py --check`` runs them
without pytest; ``python tools/sync_guide.py`` refreshes what they compare). Each check is also run here
on a deliberately broken copy of the guide, to show that it can fail.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from op_table import OPS
from scripts import load_script

from minires.ops import registry

sync = load_script("tools/sync_guide.py")
pictures = load_script("tools/draw_guide_pictures.py")
TEXT = sync.GUIDE.read_text()
FIX = "run `python tools/sync_guide.py` (or fix docs/backward.md by hand)"


def _section_of(text: str) -> dict[str, object]:
    """Each name in an op section's heading -> its section."""
    return {name: s for s in sync.sections(text) for name in s.names}


def missing_sections(text: str) -> list[str]:
    """Rows of the op table that no section heading names."""
    named = _section_of(text)
    return [row.name for row in OPS if row.name not in named]


def section_problems(text: str, row: str) -> list[str]:
    """What the section of op-table row ``row`` lacks: its row link, a code link into minires/, and a
    verbatim block of each docstring that ``python -m minires.explain`` prints for the op."""
    section = _section_of(text).get(row)
    if section is None:
        return [f"no section names `{row}` in its heading"]
    problems = []
    if not any(m["row"] == row for m in sync.ROW_LINK.finditer(section.body)):
        problems.append(
            f"section `{row}` has no link [row `{row}` in tests/op_table.py](../tests/op_table.py)"
        )
    if not any(m["label"].startswith("minires/") for m in sync.CODE_LINK.finditer(section.body)):
        problems.append(f"section `{row}` has no link to its code in minires/")
    entry = registry.get(row)
    quoted = {m["target"] for m in sync.DOCSTRING_BLOCK.finditer(section.body)}
    for source in entry.sources:
        if sync.dotted_name(source) not in quoted:
            problems.append(f"section `{row}` does not quote the docstring of {sync.dotted_name(source)}")
    return problems


# ----- the guide as it is ---------------------------------------------------------------------------------
def test_every_op_table_row_has_a_section() -> None:
    assert not missing_sections(TEXT), f"rows without a section in docs/backward.md: {missing_sections(TEXT)}"


def test_section_names_are_ops_and_unique() -> None:
    """A heading names op-table rows or registry entries and aliases (sum_to), each in one section only."""
    known = {row.name for row in OPS} | set(registry.names()) | set(registry.aliases())
    seen: dict[str, int] = {}
    for s in sync.sections(TEXT):
        for name in s.names:
            assert name in known, f"docs/backward.md:{s.line}: `{name}` in a heading is no op: {s.heading}"
            assert name not in seen, f"`{name}` heads two sections (lines {seen[name]} and {s.line})"
            seen[name] = s.line


@pytest.mark.parametrize("row", [row.name for row in OPS])
def test_section_links_and_quotes(row: str) -> None:
    assert not section_problems(TEXT, row)


def test_links_point_at_existing_code() -> None:
    problems = sync.bad_links(TEXT)
    assert not problems, "\n".join(problems)


def test_docstring_blocks_are_verbatim() -> None:
    problems = sync.stale_docstrings(TEXT)
    assert not problems, "\n".join(problems) + f"\n{FIX}"


def test_worked_examples_print_what_the_guide_shows() -> None:
    examples = sum(len(ex) for _, ex in sync.pycon_examples(TEXT))
    assert examples > 100, f"only {examples} examples found: the pycon blocks are not parsed"
    problems = sync.stale_examples(TEXT)
    assert not problems, "\n".join(problems) + f"\n{FIX}"


def test_measured_tables_are_current() -> None:
    assert len(list(sync.COMPUTED_BLOCK.finditer(TEXT))) == len(sync.COMPUTED)
    problems = sync.stale_computed(TEXT)
    assert not problems, "\n".join(problems) + f"\n{FIX}"


def test_readme_states_the_ratios_the_script_prints() -> None:
    """README.md's 'layers is 2.72e-8 ... and 0.824 with skip connections' is what gradient_flow.py prints."""
    problems = sync.stale_readme()
    assert not problems, "\n".join(problems)
    text = sync.README.read_text()
    m = sync.README_RATIOS.search(text)
    broken = text.replace(m.group(0), m.group(0).replace(m["res"], "0.855"))
    assert sync.stale_readme(broken) == [f"README.md: the gradient-flow ratio 0.855 is {m['res']} now"]


@pytest.mark.parametrize("projection", [False, True], ids=["identity", "projection"])
def test_the_committed_block_graph_is_what_make_dot_draws(projection: bool) -> None:
    """docs/basic_block*.svg (drawn by tools/draw_guide_pictures.py) has the nodes, labels and edges of
    make_dot's graph of the same BasicBlock now; a changed graph is found."""
    svg = pictures.svg_graph(pictures.GRAPHS[projection].read_text())
    source = pictures.basic_block_graph(projection).source
    assert svg[0] and svg[1], "no nodes or edges read from the SVG"
    assert svg == pictures.dot_graph(source), "run python tools/draw_guide_pictures.py"
    first_edge = next(line for line in source.split("\n") if " -> " in line)
    assert pictures.dot_graph(source.replace(first_edge + "\n", ""))[1] != svg[1]


def test_the_block_trace_adds_up() -> None:
    """The table's x row is the norm of the sum of its branch and shortcut rows (checked inside the trace
    too), and the addition hands the same gradient to both of its inputs."""
    rows = {node: value for node, _, value in pictures.basic_block_trace(True)}
    assert rows["y_pre = u2 + sc(x)"] == rows["u2 = bn2(z2)"] == rows["sc(x) = bn_sc(z_sc)"]
    branch, shortcut, total = (
        rows["x, through the branch"],
        rows["x, through the shortcut"],
        rows["x (the sum of both)"],
    )
    cosine = rows["cos(branch part, shortcut part)"]
    assert abs(total**2 - (branch**2 + shortcut**2 + 2 * cosine * branch * shortcut)) < 1e-9 * total**2


def test_the_im2col_picture_is_drawn(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    pictures.draw_im2col(tmp_path / "im2col.png")
    assert (tmp_path / "im2col.png").stat().st_size > 10_000


def test_the_exercises_listed_are_the_packages() -> None:
    """Section 11 lists, in order, the names ``python -m minires.exercises --list`` prints; a missing or an
    extra name is found."""
    assert not sync.stale_exercises(TEXT)
    assert len(list(sync.EXERCISE_ROW.finditer(sync.exercises_section(TEXT)))) == 8
    broken = _replace_once(TEXT, "| `col2im` |", "| `col2im_backward` |")
    assert len(sync.stale_exercises(broken)) == 1


def test_quoted_files_are_verbatim() -> None:
    """The worked solution of section 11 is the file in minires/exercises/solutions/, verbatim."""
    assert len(list(sync.FILE_BLOCK.finditer(TEXT))) >= 1
    assert not sync.stale_files(TEXT)
    broken = _replace_once(TEXT, "    dx = g + dh @ w.T", "    dx = dh @ w.T")
    assert sync.stale_files(broken) == [
        "file block minires/exercises/solutions/residual_fanout.py differs from the file"
    ]


# ----- the checks fail on a broken guide ------------------------------------------------------------------
def _replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) >= 1, f"the guide no longer contains {old!r}: update this test"
    return text.replace(old, new, 1)


def test_a_missing_section_is_found() -> None:
    broken = _replace_once(TEXT, "#### `nll_loss`", "#### The negative log-likelihood")
    assert missing_sections(broken) == ["nll_loss"]


def test_a_section_without_its_links_or_docstring_is_found() -> None:
    start = TEXT.index("### `relu`")
    end = TEXT.index("### `gelu`")
    broken = TEXT[:start] + "### `relu`\n\nmax(x, 0).\n\n" + TEXT[end:]
    problems = section_problems(broken, "relu")
    assert len(problems) == 3, problems


def test_an_edited_docstring_block_is_found() -> None:
    broken = _replace_once(TEXT, "dW_g    = dY_g @ cols_g^T", "dW_g    = cols_g @ dY_g^T")
    assert sync.stale_docstrings(broken) == [
        "docstring block minires.ops.conv.Conv2d differs from the docstring in the code"
    ]


def test_a_link_to_a_missing_name_is_found() -> None:
    broken = _replace_once(
        TEXT,
        "[`Conv2d` in minires/ops/conv.py](../minires/ops/conv.py)",
        "[`Conv3d` in minires/ops/conv.py](../minires/ops/conv.py)",
    )
    assert sync.bad_links(broken) == [
        "link [Conv3d in minires/ops/conv.py]: minires/ops/conv.py defines no Conv3d"
    ]
    broken = _replace_once(TEXT, "(../tests/op_table.py)", "(../tests/op_tables.py)")
    assert sync.bad_links(broken) == ["link to ../tests/op_tables.py: no such file"]


def test_a_wrong_printed_number_is_found() -> None:
    broken = _replace_once(TEXT, ">>> x.grad\ntensor([1.4])", ">>> x.grad\ntensor([1.5])")
    problems = sync.stale_examples(broken)
    assert len(problems) == 1 and "tensor([1.4])" in problems[0], problems


def test_a_wrong_measured_number_is_found() -> None:
    body = next(sync.COMPUTED_BLOCK.finditer(TEXT))["body"]
    row = body.split("\n")[2]  # the first data row of the table
    cells = row.split(" | ")
    cells[1] = f"{float(cells[1]) * 1.01:.3e}"  # 1% off
    broken = _replace_once(TEXT, row, " | ".join(cells))
    assert sync.stale_computed(broken) == ["computed block residual_table differs from what it computes now"]


@pytest.mark.parametrize(
    ("expected", "got", "same"),
    [
        ("tensor([0.1234, 2.5   ])", "tensor([0.1235, 2.5   ])", True),  # the last digit
        ("tensor([0.1234, 2.5   ])", "tensor([0.124 , 2.5   ])", False),
        ("[ 0., -0.]", "[0., 0.]", True),  # a signed zero, and the alignment
        ("8.544e-11", "8.545e-11", True),
        ("tensor([1.4])", "tensor([1.5])", False),  # 1.4 means 1.4000
        ("8.544e-11", "8.544e-10", False),
        ("(True, True)", "(True, False)", False),
        ("tensor([1., 2.])", "tensor([1., 2., 3.])", False),
    ],
)
def test_numbers_are_compared_to_their_last_printed_digit(expected: str, got: str, same: bool) -> None:
    assert sync.same_up_to_last_digits(expected, got) is same
