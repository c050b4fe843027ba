"""The four roles of an AI deal: the buyer, the model owner (seller), the compute provider and
the data owner. Each is a plain :class:`~agora.agents.agent.Agent` that runs unchanged in any runtime."""

from __future__ import annotations

from agora.agents.roles.arbiter import Arbiter
from agora.agents.roles.buyer import Buyer
from agora.agents.roles.buyer_deal import DealRecord, JobRequest
from agora.agents.roles.owners import DataOwner, ModelOwner
from agora.agents.roles.provider import ComputeProvider

__all__ = ["Arbiter", "Buyer", "ComputeProvider", "DataOwner", "DealRecord", "JobRequest", "ModelOwner"]
