"""``python -m minires.exercises``: list the exercises, show a template or a solution, check a file.
Exit status: 0 passed (or a listing), 1 the answer is wrong, 2 a usage error."""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence

from . import check_file, names, solution_path, template_path
from .checking import LearnerFileError


def _unknown(name: str) -> int:
    lower = {n.lower(): n for n in names()}
    close = difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(lower[c] for c in close)}?" if close else ""
    print(f"no exercise {name!r}{hint} (python -m minires.exercises --list shows them)", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m minires.exercises",
        description="Backward passes to write by hand, checked against minires's own.",
    )
    parser.add_argument("--list", action="store_true", help="list the exercises, one name a line")
    commands = parser.add_subparsers(dest="command")
    show = commands.add_parser("show", help="print the file to start from (the task is its docstring)")
    show.add_argument("name")
    sol = commands.add_parser("solution", help="print a worked solution, with its derivation")
    sol.add_argument("name")
    chk = commands.add_parser("check", help="check the function NAME defined in FILE")
    chk.add_argument("name")
    chk.add_argument("file")
    chk.add_argument("--seed", type=int, default=0, help="seed of the random cases")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(names()))
        return 0
    if args.command is None:
        parser.print_usage(sys.stderr)
        print("give --list, or a command: show NAME, solution NAME, check NAME FILE", file=sys.stderr)
        return 2
    if args.name not in names():
        return _unknown(args.name)
    if args.command == "show":
        print(template_path(args.name).read_text(encoding="utf-8"), end="")
        return 0
    if args.command == "solution":
        print(solution_path(args.name).read_text(encoding="utf-8"), end="")
        return 0
    try:
        report = check_file(args.name, args.file, seed=args.seed)
    except LearnerFileError as exc:
        print(f"{args.name}: {exc}", file=sys.stderr)
        return 2 if exc.usage else 1
    print(report)
    return 0 if report.ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:
        sys.stdout = None
        sys.exit(0)
