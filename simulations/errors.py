"""Errors of the simulations package, under one root.

SimulationsError
├── ScenarioError (also a PopulationError and a ValueError): a scenario file that does not
│   validate (each mistake named by its field path), or a built-in name nobody knows
├── RunError: a run that could not be carried out (a ledger or runtime it cannot reach)
└── ReportError: a folder with no run records to report on
"""

from __future__ import annotations

from agora.agents.population import PopulationError


class SimulationsError(Exception):
    """Root of every error the simulations package raises."""


class ScenarioError(SimulationsError, PopulationError):
    """A scenario that does not validate, reported before anything runs."""


class RunError(SimulationsError, RuntimeError):
    """A run that could not start or finish."""


class ReportError(SimulationsError, ValueError):
    """Nothing to report: the folder holds no run records."""
