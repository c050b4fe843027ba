"""Agents: identities, typed signed messages, handlers, the registry, roles and runtimes.

Agent code is plain Python: the same classes run in :class:`LocalRuntime` (one process, virtual
clock) and in :class:`RayRuntime` (actors on a cluster).
"""

from __future__ import annotations

from agents.agent import Agent, Context, on_message
from agents.errors import AgentsError, BadSignature, InvalidOffer, RuntimeFailure, UnknownMessage, UnknownOffer
from agents.identity import Identity
from agents.messages import Envelope, Message
from agents.registry import ComputeOffer, DatasetOffer, ModelOffer, Registry
from agents.roles import Buyer, ComputeProvider, DataOwner, DealRecord, JobRequest, ModelOwner
from agents.runtime import LocalRuntime, Runtime
from agents.wallet import Wallet

__all__ = [
    "Agent",
    "AgentsError",
    "BadSignature",
    "Buyer",
    "ComputeOffer",
    "ComputeProvider",
    "Context",
    "DataOwner",
    "DatasetOffer",
    "DealRecord",
    "Envelope",
    "Identity",
    "InvalidOffer",
    "JobRequest",
    "LocalRuntime",
    "Message",
    "ModelOffer",
    "ModelOwner",
    "Registry",
    "Runtime",
    "RuntimeFailure",
    "UnknownMessage",
    "UnknownOffer",
    "Wallet",
    "on_message",
]


def __getattr__(name: str):  # RayRuntime imports Ray lazily: agent code never needs it
    if name == "RayRuntime":
        from agents.ray_runtime import RayRuntime

        return RayRuntime
    raise AttributeError(name)
