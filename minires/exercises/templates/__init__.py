"""The starting files of the exercises, one per exercise: the function to write, its task in its docstring.
``python -m minires.exercises show NAME`` prints one; copy it, fill it in, then
``python -m minires.exercises check NAME yourfile.py``."""
