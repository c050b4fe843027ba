"""Simulations: scenarios (YAML), their runs and reports, sweeps, chaos runs, Mesa-style scripting,
the hosted trial market and the ``agora`` command line.

The face is lazy: ``from agora.simulations import Scenario`` imports only what it names, since a
run records to Parquet (pyarrow) and a report plots (matplotlib), extras a scripted market on the
core install does not need.
"""

from __future__ import annotations

import importlib
from typing import Any

_FACE = {
    "Scenario": "agora.simulations.scenario",
    "builtin_names": "agora.simulations.scenario",
    "RunSummary": "agora.simulations.runner",
    "simulate": "agora.simulations.runner",
    "run": "agora.simulations.runner",
    "sweep": "agora.simulations.sweep",
    "Model": "agora.simulations.model",
    "DataCollector": "agora.simulations.model",
    "HostedMarket": "agora.simulations.hosted",
    "hosted": "agora.simulations.hosted",
    "SimulationsError": "agora.simulations.errors",
    "ScenarioError": "agora.simulations.errors",
    "RunError": "agora.simulations.errors",
    "ReportError": "agora.simulations.errors",
}

__all__ = sorted(_FACE)


def __getattr__(name: str) -> Any:
    module = _FACE.get(name)
    if module is None:
        raise AttributeError(f"module 'agora.simulations' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
