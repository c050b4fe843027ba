"""Agents: identities, typed signed messages, handlers, the registry, roles and runtimes.

Agent code is plain Python: the same classes run in :class:`LocalRuntime` (one process, virtual
clock) and in :class:`RayRuntime` (actors on a cluster).
"""

from __future__ import annotations

from agora.agents.agent import Agent, Context, on_interval, on_message
from agora.agents.errors import (
    AgentsError,
    BadEnvelope,
    BadSignature,
    ExpiredMessage,
    ForeignDeal,
    InvalidOffer,
    KeystoreError,
    NotAParty,
    PayloadTooLarge,
    RateLimited,
    Refused,
    Rejected,
    ReplayedMessage,
    RuntimeFailure,
    UndeclaredReply,
    UnfoundedClaim,
    UnknownMessage,
    UnknownOffer,
)
from agora.agents.identity import Identity
from agora.agents.inbox import InternalMessage, Quota
from agora.agents.messages import Envelope, Message
from agora.agents.population import Population, PopulationError, register_role
from agora.agents.protocol import Protocol
from agora.agents.registry import (
    ComputeOffer,
    DatasetOffer,
    ListingTaken,
    ModelOffer,
    NotYourName,
    RatingRefused,
    Registry,
    RegistryRefused,
    RoleNotYours,
    ServiceRecord,
)
from agora.agents.registry_access import RegistryFace
from agora.agents.roles import Buyer, ComputeProvider, DataOwner, DealRecord, JobRequest, ModelOwner
from agora.agents.runtime import Link, LocalRuntime, Runtime
from agora.agents.snapshot import UnsafeStateFolder
from agora.agents.storage import Storage
from agora.agents.wallet import Wallet

__all__ = [
    "ForeignDeal",
    "InternalMessage",
    "NotAParty",
    "Refused",
    "UnfoundedClaim",
    "UnsafeStateFolder",
    "Agent",
    "AgentsError",
    "BadEnvelope",
    "BadSignature",
    "ExpiredMessage",
    "KeystoreError",
    "Link",
    "PayloadTooLarge",
    "Population",
    "PopulationError",
    "Protocol",
    "Quota",
    "RateLimited",
    "Rejected",
    "ReplayedMessage",
    "ServiceRecord",
    "Storage",
    "UndeclaredReply",
    "on_interval",
    "register_role",
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
    "RegistryFace",
    "RegistryRefused",
    "NotYourName",
    "RoleNotYours",
    "ListingTaken",
    "RatingRefused",
    "Runtime",
    "RuntimeFailure",
    "UnknownMessage",
    "UnknownOffer",
    "Wallet",
    "on_message",
]


def __getattr__(name: str):  # RayRuntime imports Ray lazily: agent code never needs it
    if name == "RayRuntime":
        from agora.agents.ray import RayRuntime

        return RayRuntime
    raise AttributeError(name)
