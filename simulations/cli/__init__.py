"""The `agora` command line. Entry points start or join Ray; library code never does.

One module per family of commands, each registering its commands on :data:`app`."""

from __future__ import annotations

from agora.simulations.cli import chain, deploy, run, sign
from agora.simulations.cli.app import app

__all__ = ["app", "chain", "deploy", "run", "sign"]
