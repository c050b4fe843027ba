"""Agents on a Ray cluster: the only Agora package (with ``tasks``' Ray executor) that imports Ray.

- :mod:`~agora.agents.ray.runtime`: :class:`RayRuntime`, many agents to a shard actor.
- :mod:`~agora.agents.ray.shard`: a shard's body (hosting, mailboxes, batching, timers), a plain
  class that reaches other shards through :mod:`~agora.agents.ray.peers` (Ray, or in-process), with
  :mod:`~agora.agents.ray.transport` (session signing, guest shards) and
  :mod:`~agora.agents.ray.durable` (the journal that brings a shard back after a crash).
- :mod:`~agora.agents.ray.ledger` and :mod:`~agora.agents.ray.registry`: the ledger and the
  registry hosted in actors of their own, and the proxies agents reach them through.
- :mod:`~agora.agents.ray.supervisor`: the shard as a Ray actor, and making shards again when their
  node dies.
- :mod:`~agora.agents.ray.deployment`: long-lived named deployments and the guests that join them.

Importing this package does not import Ray: each module imports it where it is used, so agent
code and the local runtime run where Ray is not installed. Library code never calls
``ray.init()``; the entry point (``agora simulate``, ``agora deploy``, your script) does.
"""

from __future__ import annotations

from agora.agents.ray.ledger import LedgerService, RemoteLedger
from agora.agents.ray.registry import BatchedRegistry, OperatorRegistry, RegistryService
from agora.agents.ray.runtime import RayRuntime
from agora.tasks.ray_executor import ActorClient as RemoteProxy


def ray_is_running() -> bool:
    """Whether this process has started or joined Ray (the entry point's job, never the library's)."""
    import ray

    return bool(ray.is_initialized())


__all__ = ["ray_is_running", "BatchedRegistry", "LedgerService", "OperatorRegistry", "RayRuntime", "RegistryService", "RemoteLedger", "RemoteProxy"]
