"""Worked solutions of the exercises, one file per exercise, each with its derivation in its docstring.
``python -m minires.exercises solution NAME`` prints one. NumPy only: what a learner would write."""
