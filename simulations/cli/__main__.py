"""``python -m agora.simulations.cli``: the `agora` command."""

from agora.simulations.cli import app

if __name__ == "__main__":  # imported (by a tool walking the package), it runs nothing
    app()
