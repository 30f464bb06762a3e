"""The op registry (minires/ops/registry.py) against the op table and the public API: every entry has a row
and every row an entry; every public spelling an entry claims exists, and every spelling a row tests is
claimed; lookups resolve names, aliases and spellings, and fail clearly on anything else."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from op_table import OPS, OPS_BY_NAME

import minires as mr
import minires.nn.functional as F
from minires.function import Function
from minires.ops import registry
from minires.ops.registry import Entry, Registry, UnknownOpError

# Where each public spelling's prefix points: ``F.relu`` is minires.nn.functional.relu.
PREFIXES = {"mr": mr, "F": F, "Tensor": mr.Tensor}
SPELLING = re.compile(r"^(?P<prefix>mr|F|Tensor)\.(?P<attr>\w+)")


def _row_spellings(row: Any) -> set[str]:
    """The public spellings a row tests: its variant keys (``Tensor.reshape(*shape)``) or the name of its
    one callable (``F.linear``), cut to ``prefix.name``."""
    labels = list(row.op) if isinstance(row.op, dict) else [getattr(row.op, "__name__", "")]
    return {m[0] for label in labels if (m := SPELLING.match(label))}


def test_every_entry_has_a_row() -> None:
    missing = [name for name in registry.names() if name not in OPS_BY_NAME]
    assert not missing, f"registry entries without a row in tests/op_table.py: {missing}"


def test_every_row_names_an_entry() -> None:
    """A row extends the entry of its own name, not an alias or a spelling of one."""
    unknown = [row.name for row in OPS if row.name not in registry.names()]
    assert not unknown, f"op-table rows that name no entry of minires/ops/registry.py: {unknown}"
    assert all(row.entry.name == row.name for row in OPS)


@pytest.mark.parametrize("spelling", sorted(registry.api()))
def test_public_spellings_exist(spelling: str) -> None:
    m = SPELLING.fullmatch(spelling)
    assert m, f"{spelling!r} is not of the form mr.NAME, F.NAME or Tensor.NAME"
    assert callable(getattr(PREFIXES[m["prefix"]], m["attr"], None)), f"minires has no {spelling}"


def test_the_spellings_rows_test_are_in_the_registry() -> None:
    """A variant of a row that names a public spelling (``Tensor.sqrt``) is listed in its entry's api."""
    unlisted = {row.name: sorted(_row_spellings(row) - set(row.entry.api)) for row in OPS}
    unlisted = {name: s for name, s in unlisted.items() if s}
    assert not unlisted, f"spellings the op table tests but minires/ops/registry.py does not list: {unlisted}"


def test_every_entry_has_a_derivation_and_an_example() -> None:
    for entry in registry.REGISTRY:
        assert entry.sources and all(s.__doc__ for s in entry.sources), entry.name
        assert entry.call, entry.name
        fn, inputs = entry.sample(np.random.default_rng(0))
        assert any(isinstance(x, mr.Tensor) and x.requires_grad for x in inputs), entry.name
        assert all(x.dtype == mr.float64 for x in inputs if isinstance(x, mr.Tensor) and x.requires_grad)
        assert isinstance(fn(*inputs), mr.Tensor), entry.name


# ----- lookups ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("relu", "relu"),
        ("F.relu", "relu"),
        ("Tensor.relu", "relu"),
        ("view", "reshape"),
        ("Tensor.view", "reshape"),
        ("cpu", "to"),
        ("sum_to", "broadcast_to"),
        ("Tensor.__radd__", "add"),
        ("Tensor.__getitem__", "getitem"),
    ],
)
def test_get_resolves_names_aliases_and_spellings(key: str, name: str) -> None:
    assert registry.get(key).name == name
    assert registry.find(key) is registry.get(key)


def test_an_unknown_name_fails_clearly() -> None:
    with pytest.raises(UnknownOpError, match=r"unknown op 'rleu'.*did you mean relu"):
        registry.get("rleu")
    with pytest.raises(LookupError, match="no entry in minires/ops/registry.py"):
        registry.get("Tensor.numpy")
    assert registry.find("no_such_op") is None


def test_names_and_aliases() -> None:
    names = registry.names()
    assert len(names) == len(set(names)) == len(registry.REGISTRY)
    assert names[:3] == ["linear", "relu", "gelu"]
    assert registry.aliases() == {
        "expand": "broadcast_to",
        "sum_to": "broadcast_to",
        "view": "reshape",
        "cpu": "to",
    }
    assert all(registry.api()[s] == "relu" for s in ("F.relu", "mr.relu", "Tensor.relu"))


class _Identity(Function):
    """y = x; backward dx = g."""

    def forward(self, x: Any) -> Any:
        return x

    def backward(self, g: Any) -> Any:
        return g


def _entry(name: str, api: tuple[str, ...] = (), aliases: tuple[str, ...] = ()) -> Entry:
    return Entry(
        name, (_Identity,), "x", lambda rng: (lambda x: _Identity()(x), []), api=api, aliases=aliases
    )


@pytest.mark.parametrize(
    "entries",
    [
        [_entry("a"), _entry("a")],
        [_entry("a", aliases=("b",)), _entry("b")],
        [_entry("a", api=("F.a",)), _entry("c", api=("F.a",))],
    ],
    ids=["a name twice", "an alias that is another entry's name", "a spelling of two entries"],
)
def test_a_key_that_names_two_ops_is_refused(entries: list[Entry]) -> None:
    with pytest.raises(ValueError, match="names both"):
        Registry(entries)
