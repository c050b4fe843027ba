"""The four roles of an AI deal: the buyer, the model owner (seller), the compute provider and
the data owner. Each is a plain :class:`~agents.agent.Agent` that runs unchanged in any runtime."""

from __future__ import annotations

from agents.roles.arbiter import Arbiter
from agents.roles.buyer import Buyer, DealRecord, JobRequest
from agents.roles.owners import DataOwner, ModelOwner
from agents.roles.provider import ComputeProvider

__all__ = ["Arbiter", "Buyer", "ComputeProvider", "DataOwner", "DealRecord", "JobRequest", "ModelOwner"]
