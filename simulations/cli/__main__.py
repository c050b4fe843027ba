"""``python -m agora.simulations.cli``: the `agora` command."""

from agora.simulations.cli import app

app()
