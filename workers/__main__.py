"""``python -m workers``: the same commands as ``socflow worker``."""

from workers.cli import app

app(prog_name="socflow worker")
