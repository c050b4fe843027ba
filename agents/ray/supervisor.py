"""Making shards as Ray actors (:class:`RayShard`), and making them again: a deployment heals
with no driver attached.

Shards are named actors. A general shard needs no resources, so shard i goes to node i mod n of
the cluster's live nodes (hard affinity; Ray's SPREAD stacks zero-CPU actors on one node). A
durable shard whose node died cannot be restarted there by Ray; the supervisor respawns it on a
live node, and it comes back from its journal."""

from __future__ import annotations

import functools
import threading
import time
from typing import Any

from agora.agents.ray.ledger import RemoteLedger
from agora.agents.ray.peers import RayPeers
from agora.agents.ray.registry import BatchedRegistry
from agora.agents.ray.shard import Shard


class RayShard(Shard):
    """A shard as a Ray actor: the ledger and registry services reached through their handles,
    the other shards as named actors, jobs as Ray tasks (vaults check payment on the ledger)."""

    def __init__(
        self,
        index: int,
        ledger: Any,
        registry: Any,
        store_root: str,
        seed: int | str,
        batch: int,
        ttl: float | None,
        linger: float,
        signing: str,
        name: str = "agora",
        durable: str | None = None,
        fsync: bool = False,
    ) -> None:
        from agora.tasks.ray_executor import RayExecutor

        executor = RayExecutor(store_root, ledger=functools.partial(RemoteLedger, ledger))
        super().__init__(
            index,
            RemoteLedger(ledger),
            BatchedRegistry(registry),
            store_root,
            seed,
            batch,
            ttl,
            linger,
            signing,
            name,
            durable,
            fsync,
            peers=RayPeers(name),
            executor=executor,
        )


def on_head() -> dict[str, Any]:
    """Options that keep an actor on the cluster's head node: the ledger and registry services
    and the supervisor hold what shards cannot rebuild, and the head is the node whose loss ends
    the cluster anyway (Ray's control store lives there)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    for node in ray.nodes():
        if node.get("Alive") and "node:__internal_head__" in node.get("Resources", {}):
            return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)}
    return {}


class ShardMaker:
    """How to make shard ``index`` (again): its constructor's arguments and actor options. The
    runtime keeps one per shard, and so does a deployment's supervisor, which respawns a
    durable shard whose node died (Ray cannot restart it there: its affinity is hard)."""

    def __init__(self, name: str, args: tuple, kwargs: dict[str, Any], options: dict[str, Any], general: bool) -> None:
        self.name, self.args, self.kwargs, self.options, self.general = name, args, kwargs, options, general

    def spawn(self, index: int) -> Any:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        chosen = {"name": f"{self.name}-shard-{index}", **self.options}
        if self.general and "scheduling_strategy" not in chosen:
            # a general shard needs no resources, so it fits anywhere: shard i on node i mod n of
            # the nodes alive now. Hard affinity: Ray's SPREAD and even *soft* node affinity stack
            # zero-CPU actors on one node (measured on Ray 2.60)
            nodes = sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive"))
            if nodes:
                chosen["scheduling_strategy"] = NodeAffinitySchedulingStrategy(nodes[index % len(nodes)], soft=False)
        return ray.remote(RayShard).options(**chosen).remote(index, *self.args, name=self.name, **self.kwargs)


def respawn_dead(makers: list[ShardMaker], shards: list[Any], probe_timeout: float = 10.0) -> list[int]:
    """Make again every shard that is dead for good (its node gone); a durable one comes back
    from its journal. Returns the indexes respawned (``shards`` is updated in place)."""
    import ray
    from ray.exceptions import ActorUnschedulableError, GetTimeoutError, RayActorError

    probes = [s.backlog.remote() for s in shards]
    respawned = []
    for index, probe in enumerate(probes):
        try:
            ray.get(probe, timeout=probe_timeout)
        except GetTimeoutError:
            continue  # busy or restarting in place: Ray is on it
        except (RayActorError, ActorUnschedulableError):  # died, or cannot come back where it was
            shards[index] = makers[index].spawn(index)
            respawned.append(index)
    return respawned


class Supervisor:
    """A deployment's watcher (a detached actor): every ``period`` seconds it respawns the
    shards that died with their node, so a deployment heals with no driver attached."""

    def __init__(self, makers: list[ShardMaker], shards: list[Any], period: float = 1.0) -> None:
        self.makers, self.shards, self.period = makers, list(shards), period
        self.respawned: list[int] = []
        self.failures: list[str] = []
        self._running = True
        threading.Thread(target=self._loop, daemon=True, name="supervisor").start()

    def _loop(self) -> None:
        while self._running:
            time.sleep(self.period)
            try:
                self.respawned += respawn_dead(self.makers, self.shards)
            except Exception as exc:  # noqa: BLE001 - a failed round is tried again next period
                self.failures = [*self.failures[-9:], f"{type(exc).__name__}: {exc}"]

    def history(self) -> dict[str, list]:
        return {"respawned": list(self.respawned), "failures": list(self.failures)}

    def halt(self) -> None:
        self._running = False
