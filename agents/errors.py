"""Errors of the agents package.

    AgentsError
     ├── InvalidOffer (ValueError)       an offer with a bad price, hash or resource
     ├── UnknownOffer (KeyError)         no model, dataset or provider under that key
     ├── BadSignature (PermissionError)  an envelope whose signature does not match its sender
     ├── UnknownMessage (ValueError)     a schema digest no handler knows
     └── RuntimeFailure                  the runtime could not deliver or host an agent
"""

from __future__ import annotations


class AgentsError(Exception):
    """Root of every error raised by the agents package."""


class InvalidOffer(AgentsError, ValueError):
    """An offer failed validation; the message names the field."""


class UnknownOffer(AgentsError, KeyError):
    """Nothing is registered under that key."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class BadSignature(AgentsError, PermissionError):
    """An envelope was not signed by the sender it names."""


class UnknownMessage(AgentsError, ValueError):
    """A message type (schema digest) that the receiving agent does not speak."""


class RuntimeFailure(AgentsError, RuntimeError):
    """The runtime failed to host an agent or deliver a message."""
