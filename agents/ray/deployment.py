"""Deployments: a population left running on a Ray cluster, found again by name.

``agora deploy POPULATION --address ADDR`` starts the population on a RayRuntime whose actors
(shards, ledger, registry) are *detached* and *named* ``NAME-shard-i``, ``NAME-ledger``,
``NAME-registry`` in the ``agora`` namespace, so they keep running after the command exits and
any later command finds them by name. The shards are durable (agents.journal, under the state
folder): one that dies is restarted with its agents. ``agora status`` lists the agents with
their balances, open contracts and queue lengths. ``agora stop`` drains the deployment (timers
paused, queues emptied, every batch acknowledged), snapshots every agent, the registry and a
memory ledger into the state folder, and stops the actors; a later ``deploy`` of the same
population with the same state folder resumes from those snapshots instead of starting afresh.

Deployed clusters keep Ray's token authentication on: connecting refuses to go on unless
``RAY_AUTH_MODE=token`` is set (with the token in ``RAY_AUTH_TOKEN`` or Ray's token file, as on
the cluster's nodes); only tests pass ``allow_unauthenticated``. The state folder must be one
every node of the cluster reaches (a shared mount), like the content store, and it is the
operator's alone: it holds pickles, so it is written owner-only and ``deploy`` refuses one that
others may write (or that another user owns) before it starts anything (agents.snapshot).
"""

from __future__ import annotations

import contextlib
import functools
import json
import pickle
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from agora.agents.agent import Agent
from agora.agents.errors import AgentsError
from agora.agents.population import Population
from agora.agents.ray.registry import OperatorRegistry
from agora.agents.snapshot import UnsafeStateFolder, check_private, private_folder, read_private, write_private

NAMESPACE = "agora"

ActorHandle = Any
"""A Ray actor handle (``ray.remote(Cls)...remote()``): its methods' ``.remote`` are made at
run time, which a type checker cannot follow, so handles are typed as Any."""


class DeploymentError(AgentsError, RuntimeError):
    """A deployment that cannot be started, found or stopped, with the reason."""


class UnsafeDeploymentState(DeploymentError, UnsafeStateFolder):
    """A deployment's state folder (or a file in it) that others may write: refused before
    anything is loaded or started (``agora deploy`` reports it as any DeploymentError)."""


@contextlib.contextmanager
def _owner_only() -> Iterator[None]:
    """Report a state folder others may write as a DeploymentError (what the CLI prints)."""
    try:
        yield
    except UnsafeStateFolder as exc:
        raise UnsafeDeploymentState(str(exc)) from None


class _Restore:
    """A ledger factory that brings back a pickled ledger (what ``stop`` kept)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __call__(self) -> Any:
        return pickle.loads(self.data)


def _actor(name: str) -> Any | None:
    import ray

    try:
        return ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        return None


def deploy(
    population_file: str | Path, name: str, state: str | Path, *, shards: int = 2, rpc_url: str | None = None, address_book: str | None = None
) -> dict[str, Any]:
    """Start (or resume) ``population_file`` as deployment ``name``; returns its manifest."""
    from agora.agents.ray import RayRuntime
    from agora.chain import EVMLedger, MemoryLedger

    state = Path(state).resolve()
    snapshots, journal = state / "snapshots", state / "journal"
    with _owner_only():  # first: nothing is read or started from a folder others may write
        private_folder(state)
        for folder in (snapshots, journal):
            if folder.exists():
                check_private(folder)
        resume = snapshots.exists() and any(p.name.startswith("agent-") for p in snapshots.iterdir())
        kept_ledger = read_private(state / "ledger.pickle") if resume else None
        registry = read_private(state / "registry.pickle") if resume else None
    if _actor(f"{name}-registry") is not None:
        raise DeploymentError(f"deployment {name!r} is already running: `agora stop --name {name}` first")
    population = Population.load(population_file)
    if journal.exists() and any(journal.iterdir()):
        raise DeploymentError(
            f"{journal} holds the journal of a deployment that did not stop cleanly; its shards recover "
            "from it only while they run (restart them, or move it away to start from the last stop)"
        )
    with _owner_only():
        private_folder(journal)  # the shards journal under it: owner-only from the start
    roles = population.ledger_roles()  # an arbiter agent in the population rules on the ledger's disputes
    if rpc_url:
        factory: Any = functools.partial(EVMLedger.connect, rpc_url, address_book=address_book, **roles)
    elif kept_ledger is not None:
        factory = _Restore(kept_ledger)
    else:
        factory = functools.partial(MemoryLedger, **roles)
    rt = RayRuntime(factory, shards=shards, name=name, seed=population.seed, durable=str(journal), detached=True, registry_state=registry)
    names = rt.add_population(population, resume_from=str(snapshots) if resume else None)
    if not resume:
        for group in population.agents:
            if group.funds:
                for agent in group.names():
                    rt.ledger.mint(names[agent], group.funds)
    rt.start()
    rt.supervise()  # respawns shards whose node dies, with no driver attached
    manifest = {
        "name": name,
        "shards": shards,
        "population": str(Path(population_file).resolve()),
        "state": str(state),
        "agents": names,
        "resumed": resume,
        "ledger": rpc_url or "memory",
        "started": time.time(),
        # what a guest shard needs to speak as this deployment's shards do (agora.agents.ray.deployment.Guest)
        "seed": population.seed,
        "signing": rt.signing,
        "store": rt.store_root,
    }
    # the Ray runtime's registry is the operator's client of the registry actor (RayRuntime.__init__)
    cast(OperatorRegistry, rt.registry).set_deployment(manifest)
    write_private(state / "deployment.json", json.dumps(manifest, indent=2).encode())
    return manifest


def _parts(name: str) -> tuple[dict[str, Any], Any, Any, list[Any]]:
    import ray

    registry = _actor(f"{name}-registry")
    if registry is None:
        raise DeploymentError(f"no deployment named {name!r} runs on this cluster")
    manifest = ray.get(registry.deployment.remote())
    shards = [_actor(f"{name}-shard-{i}") for i in range(manifest["shards"])]
    return manifest, registry, _actor(f"{name}-ledger"), shards


def supervision(name: str) -> dict[str, list]:
    """What the deployment's supervisor did: shards respawned (their nodes died), in order, and
    its last failed rounds."""
    import ray

    supervisor = _actor(f"{name}-supervisor")
    return {"respawned": [], "failures": []} if supervisor is None else ray.get(supervisor.history.remote())


def status(name: str) -> list[dict[str, Any]]:
    """One row per deployed agent: name, address, class, balance, open contracts, queued."""
    import ray
    from ray.exceptions import GetTimeoutError, RayActorError

    from agora.agents.ray.ledger import RemoteLedger

    _, _, ledger, shards = _parts(name)
    down = [i for i, s in enumerate(shards) if s is None]
    try:
        parts = ray.get([s.status.remote() for s in shards if s is not None], timeout=30)
    except (RayActorError, GetTimeoutError) as exc:
        raise DeploymentError(f"a shard of {name!r} is down or restarting ({type(exc).__name__}); try again shortly") from None
    if down:
        raise DeploymentError(f"shards {down} of {name!r} are down (their node died; the supervisor respawns them); try again shortly")
    rows = [row for part in parts for row in part]
    remote = RemoteLedger(ledger)
    for row in rows:
        row["balance"] = remote.balance_of(row["address"])
    return sorted(rows, key=lambda r: r["name"])


def stop(name: str, drain_timeout: float = 60.0) -> dict[str, Any]:
    """Drain, snapshot and stop deployment ``name``; returns what was kept where."""
    import ray

    manifest, registry, ledger, shards = _parts(name)
    state = Path(manifest["state"])
    supervisor = _actor(f"{name}-supervisor")
    if supervisor is not None:  # first, so nothing is respawned while the deployment stops
        ray.kill(supervisor, no_restart=True)
    ray.get([s.pause.remote() for s in shards])  # no new timer work; armed timers stay in the snapshots
    deadline = time.monotonic() + drain_timeout
    while sum(ray.get([s.backlog.remote() for s in shards])) > 0:
        if time.monotonic() > deadline:
            raise DeploymentError(f"deployment {name!r} did not drain in {drain_timeout:.0f} s; nothing was stopped")
        time.sleep(0.05)
    snapshots = state / "snapshots"
    kept = sum(len(done) for done in ray.get([s.snapshot.remote(str(snapshots)) for s in shards]))
    write_private(state / "registry.pickle", ray.get(registry.dump.remote()))
    if manifest["ledger"] == "memory":
        write_private(state / "ledger.pickle", ray.get(ledger.dump.remote()))
    ray.get([s.stop.remote() for s in shards])
    for actor in [*shards, ledger, registry]:
        ray.kill(actor, no_restart=True)
    shutil.rmtree(state / "journal", ignore_errors=True)  # the snapshots supersede it
    return {"agents": kept, "state": str(state)}


class Guest:
    """Agents of this process joined to running deployment ``name`` for as long as this process
    holds them: how ``agora gateway --join NAME`` puts its gateway agent into a market someone
    else deployed. They live in one shard actor of their own (not detached: it goes when this
    process does) that speaks to the deployment's shards exactly as they speak to each other
    (signed batches, the same ledger and registry actors); every deployment shard admits it for
    a lease this process renews every ``renew_s`` (a shard respawned meanwhile learns it again at
    the next renewal), and ``leave`` (or a lapsed lease) lets it go, so a guest never holds up
    ``agora stop``. The deployment's own agents are read through ``query``."""

    def __init__(self, name: str, agents: list[Agent], *, lease_s: float = 30.0, renew_s: float = 5.0) -> None:
        import ray

        from agora.agents.ray.supervisor import RayShard
        from agora.tasks.store import default_root

        if lease_s <= renew_s:
            raise DeploymentError(f"a guest's lease ({lease_s} s) must outlast its renewal period ({renew_s} s)")
        self.name, self.lease_s, self.renew_s = name, lease_s, renew_s
        self.manifest, self.registry_actor, self.ledger_actor, shards = _parts(name)
        self.rows = self._rows(shards)
        self.placement = {row["address"]: row["shard"] for row in self.rows}
        self.index = self.manifest["shards"] + 1 + secrets.randbelow(2**30)  # apart from any other guest's
        # Any: Ray types this handle in part, and its methods' ``.remote`` not at all
        self.shard = cast(
            ActorHandle,
            ray.remote(RayShard)
            .options(num_cpus=0, max_concurrency=8)
            .remote(
                self.index,
                self.ledger_actor,
                self.registry_actor,
                self.manifest.get("store") or str(default_root()),
                self.manifest.get("seed", 0),
                64,
                300.0,
                0.005,
                self.manifest.get("signing", "session"),
                name=name,
            ),
        )
        self.addresses: list[str] = ray.get(self.shard.add.remote(agents))
        ray.get(self.shard.connect.remote(shards, {**self.placement, **dict.fromkeys(self.addresses, self.index)}))
        self._admit(shards)
        ray.get(self.shard.start.remote(self.addresses))
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew, name=f"agora-guest-{name}", daemon=True)
        self._renewer.start()

    @staticmethod
    def _rows(shards: list[Any]) -> list[dict[str, Any]]:
        import ray

        if any(s is None for s in shards):
            raise DeploymentError("a shard of the deployment is down (the supervisor respawns it); try again shortly")
        return [row for part in ray.get([s.status.remote() for s in shards], timeout=30) for row in part]

    def _shards(self) -> list[Any]:
        return [_actor(f"{self.name}-shard-{i}") for i in range(self.manifest["shards"])]

    def _admit(self, shards: list[Any]) -> None:
        import ray

        ray.get([s.admit.remote(self.index, self.shard, self.addresses, self.lease_s) for s in shards if s is not None], timeout=30)

    def _renew(self) -> None:
        while not self._stop.wait(self.renew_s):
            try:
                self._admit(self._shards())  # by name: a respawned shard is a new actor
            except Exception:  # noqa: BLE001 - a shard restarting; the lease outlasts a missed renewal
                continue

    def query(self, address: str, method: str, *args: Any) -> Any:
        """Call a public method of one of this guest's agents, or of a deployed agent."""
        import ray

        if address in self.addresses:
            return ray.get(self.shard.query.remote(address, method, *args))
        index = self.placement.get(address)
        shard = None if index is None else _actor(f"{self.name}-shard-{index}")
        if shard is None:
            raise DeploymentError(f"no agent {address} in deployment {self.name!r}")
        return ray.get(shard.query.remote(address, method, *args), timeout=30)

    def leave(self) -> None:
        """Stop the guest's agents and let every deployment shard forget them."""
        import ray

        self._stop.set()
        self._renewer.join(timeout=self.renew_s + 1)
        try:
            ray.get([s.dismiss.remote(self.index) for s in self._shards() if s is not None], timeout=30)
            ray.get(self.shard.stop.remote(), timeout=30)
        finally:
            ray.kill(self.shard)
