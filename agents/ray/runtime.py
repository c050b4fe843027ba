"""RayRuntime: agents on a Ray cluster, many to an actor.

One Ray actor per agent cannot scale (on this 2-core machine an actor takes about a third of a
second and ~100 MB to start), so agents live in *shards*: each shard is one Ray actor hosting
many :class:`~agora.agents.host.AgentHost`s, the same hosts the LocalRuntime uses. Envelopes between
shards travel in batches of at most ``batch`` per Ray call, flushed when a batch fills, when the
call that produced them ends, and every few milliseconds for sends made by timers; envelopes
between agents of one shard never leave the process. A heavy agent may get a shard of its own
with Ray resources (``add(agent, dedicated={"num_gpus": 1})``), placed by Ray where those are.
A general shard needs no resources, so shard i goes to node i mod n of the cluster's live nodes,
unless ``actor_options`` names a scheduling strategy.

How envelopes are signed is the runtime's ``signing`` policy, and across shards it is never off:
``"session"`` (the default) has each shard make a fresh session key at start; every agent it hosts
signs, once, a delegation to that key with its own key; a batch to another shard carries one
session signature over the digests of all its envelopes, with its senders' delegations. The
receiver checks each delegation the first time it sees it and a batch signature once per batch, so secp256k1 is paid per batch, not per message — the trust is the same, since a
shard holds its agents' keys anyway. ``"agent"`` signs and verifies every envelope with its
agent's own key. Between agents of one shard, envelopes stay in the process (unsigned under
``"session"``).

Inside a shard each agent has its own queue and lock, and the actor runs several calls at once
(threads): a handler that blocks on the ledger or a job holds only its own agent; the others keep
being served. Envelopes are always signed here and their headers validated on arrival, since
they cross process and machine boundaries. The ledger and the registry live in actors of their
own; registry writes from a shard are batched into one call per flush. Library code never calls
``ray.init()``: the caller starts or joins Ray first.

Fault tolerance (``durable=FOLDER``, a folder every node reaches): shards are named actors that
Ray restarts (``max_restarts=-1``) and whose calls it retries after a restart
(``max_task_retries=-1``), so a delivery is at least once. A shard returns from a delivery only
after the envelopes in it were handled and the resulting agent states journaled (agents.journal),
and sends each envelope only with the journaled state of the agent that sent it (envelopes between
agents of one shard too, so a crash leaves no orphan and loses none); it remembers each batch it sent until
the receiver returns, and sends it again after its own restart. A restarted shard rebuilds its
agents from the journal (keys from their population, never from the journal) with their replay
windows, so every redelivered envelope is dropped by nonce: none is lost, none handled twice.
Effects outside the agents (a ledger call in a handler that ran just before a crash) are not
rolled back: a handler that runs again after a restart repeats them, which the ledger refuses for
keyed operations (an escrow, channel or batch epoch exists once, a transfer_from_many with a
settlement reference settles once). An agent that must not repeat one calls ``ctx.checkpoint()``
before it (write-ahead): its state is journaled mid-handler, and after a crash it comes back
there, the message counted as handled, to find out from the ledger whether the effect landed
(the exchange pays its rounds so).
"""

from __future__ import annotations

import itertools
import pickle
import time
from collections.abc import Callable
from typing import Any, cast

from agora.agents.agent import Agent
from agora.agents.errors import RuntimeFailure
from agora.agents.identity import Identity
from agora.agents.messages import Envelope
from agora.agents.ray.ledger import LedgerService, RemoteLedger
from agora.agents.ray.registry import OperatorRegistry, RegistryService
from agora.agents.ray.supervisor import ShardMaker, Supervisor, on_head, respawn_dead
from agora.agents.runtime import LedgerSource, Runtime, wait_until
from agora.chain import Ledger, MemoryLedger


def _unwrap(fn: Callable[[], Any]) -> Any:
    from ray.exceptions import RayTaskError

    try:
        return fn()
    except RayTaskError as exc:
        raise exc.cause from None


LEDGER_CONCURRENCY = 32
"""Ledger calls the service runs at once: about the agent threads that can wait on it
(shards x their concurrency), so no sender queues behind another's confirmation."""


class _Given:
    """A ledger passed as an instance, made a factory: it travels to the ledger service's actor
    (pickled; the service's copy is the runtime's ledger from then on, read it as ``rt.ledger``)."""

    def __init__(self, ledger: Ledger) -> None:
        try:
            self.data = pickle.dumps(ledger)
        except Exception as exc:  # noqa: BLE001 - a ledger holding a connection or a node
            raise RuntimeFailure(
                f"this {type(ledger).__name__} cannot travel to a Ray actor ({exc}): pass a factory that makes it there, e.g. EVMLedger.embedded"
            ) from None

    def __call__(self) -> Ledger:
        return pickle.loads(self.data)


class RayRuntime(Runtime):
    """Hosts agents in shard actors on the Ray cluster this process is connected to.

    ``ledger`` is a factory (``EVMLedger.embedded``, ``functools.partial(MemoryLedger, ...)``)
    that the ledger service's actor calls, or a ledger instance, which travels there pickled: the
    runtime's ledger is then that copy, so read and write it as ``rt.ledger`` (what you do to the
    instance you passed afterwards does not reach the runtime)."""

    driven = False

    def __init__(
        self,
        ledger: LedgerSource = MemoryLedger,
        *,
        shards: int = 2,
        store_root: str | None = None,
        seed: int | str = 0,
        batch: int = 64,
        linger: float = 0.005,
        signing: str = "session",
        ttl: float | None = 300.0,
        actor_options: dict[str, Any] | None = None,
        name: str | None = None,
        durable: str | None = None,
        fsync: bool = False,
        detached: bool = False,
        registry_state: bytes | None = None,
    ) -> None:
        import ray

        if not ray.is_initialized():
            raise RuntimeFailure("Ray is not running: call ray.init() (or ray.init(address=...)) in your entry point first")
        if shards < 1 or not 1 <= batch <= 64:
            raise RuntimeFailure(f"need at least one shard and a batch of 1..64, got {shards} and {batch}")
        if signing not in ("session", "agent"):
            raise RuntimeFailure(f"signing across shards is 'session' or 'agent' (never off), got {signing!r}")
        import uuid

        from agora.tasks.store import default_root

        self.name = name or f"agora-{uuid.uuid4().hex[:8]}"
        self.durable = None if durable is None else str(durable)
        self.fsync, self.detached = fsync, detached
        life = {"lifetime": "detached"} if detached else {}
        service = {"num_cpus": 0, "max_concurrency": 1, **life, **on_head()}
        served = {**service, "max_concurrency": LEDGER_CONCURRENCY}  # many senders at once (see LedgerService)
        factory = _Given(ledger) if isinstance(ledger, Ledger) else ledger
        if not callable(factory):
            raise RuntimeFailure(f"a runtime settles on a Ledger or a factory of one, not {type(ledger).__name__}")
        self._ledger_actor = ray.remote(LedgerService).options(name=f"{self.name}-ledger", **served).remote(factory)
        # the registry checks ratings on the ledger actor and takes the operator's writes (priors,
        # the roster of roles) by this key's signature: the actor refuses every unsigned write
        self._operator = Identity.generate()
        self._registry_actor = (
            ray.remote(RegistryService).options(name=f"{self.name}-registry", **service).remote(registry_state, self._ledger_actor, self._operator.address)
        )
        self.ledger = RemoteLedger(self._ledger_actor)
        self.registry = OperatorRegistry(self._registry_actor, self._operator)  # type: ignore[assignment]  # the actor client stands in for a Registry
        self.store_root = str(store_root or default_root())  # a folder every node can read
        self.seed, self.batch, self.ttl, self.linger, self.signing = seed, batch, ttl, linger, signing
        self.actor_options = {"num_cpus": 0, "max_concurrency": 8, **life, **(actor_options or {})}
        if durable is not None:  # a shard that dies comes back (its journal says as what) and gets its calls again
            self.actor_options.update(max_restarts=-1, max_task_retries=-1)
        self._makers: list[ShardMaker] = []
        self._supervisor: Any = None
        self._shards: list[Any] = [self._new_shard(i, {}) for i in range(shards)]
        self._general = shards
        self._placement: dict[str, int] = {}
        self._names: dict[str, str] = {}
        self._pending: dict[int, list[Agent]] = {}
        self._order: list[str] = []
        self._resumed: set[str] = set()
        self._next = itertools.count()
        self._seeded: dict[int, list[tuple[int | str, str]]] = {}  # shard -> (key seed, name) of agents added one by one

    def _new_shard(self, index: int, options: dict[str, Any]) -> Any:
        args = (self._ledger_actor, self._registry_actor, self.store_root, self.seed, self.batch, self.ttl, self.linger, self.signing)
        if index == len(self._makers):
            self._makers.append(
                ShardMaker(self.name, args, {"durable": self.durable, "fsync": self.fsync}, {**self.actor_options, **options}, general=not options)
            )
        return self._makers[index].spawn(index)

    @property
    def shards(self) -> int:
        return len(self._shards)

    def add(self, agent: Agent, *, key_seed: int | str | None = None, dedicated: dict[str, Any] | None = None) -> str:
        """Host ``agent`` in a shard (round robin), or in a shard of its own with the Ray
        resources in ``dedicated`` (a GPU provider: ``{"num_gpus": 1}``). A durable runtime
        never journals keys: it takes an agent whose key derives from ``key_seed`` and its name
        (``Identity.from_seed(key_seed, agent.name)``), or a population (``add_population``)."""
        if agent.address in self._placement:
            raise RuntimeFailure(f"{agent.name} ({agent.address}) is already hosted")
        if self.durable is not None:
            if key_seed is None:
                raise RuntimeFailure(
                    "a durable runtime rebuilds agents' keys after a restart: use add_population, or add(agent, key_seed=...) for a key from a seed"
                )
            if Identity.from_seed(key_seed, agent.name).address != agent.address:
                raise RuntimeFailure(f"{agent.name}'s key does not derive from key_seed {key_seed!r} and its name: a durable shard could not rebuild it")
            self._seeded.setdefault(len(self._shards) if dedicated is not None else self._peek(), []).append((key_seed, agent.name))
        if dedicated is not None:
            index = len(self._shards)
            self._shards.append(self._new_shard(index, dedicated))
        else:
            index = next(self._next) % self._general
        self._pending.setdefault(index, []).append(agent)
        self._place(agent.name, agent.address, index)
        return agent.address

    def _peek(self) -> int:
        """The general shard the next ``add`` goes to (without taking the turn)."""
        turn = next(self._next)
        self._next = itertools.count(turn)
        return turn % self._general

    def add_population(self, population: Any, resume_from: str | None = None) -> dict[str, str]:
        """Build a whole population inside the shards (keys derived there, in parallel), or,
        with ``resume_from``, host it again from the snapshots a ``snapshot`` call wrote there
        (``start`` then leaves those agents' on_start alone); returns name -> address."""
        import ray

        from agora.agents.population import to_spec, user_roles

        names = [n for group in population.agents for n in group.names()]
        parts: dict[int, list[str]] = {}
        for name in names:
            parts.setdefault(next(self._next) % self._general, []).append(name)
        spec, extra = to_spec(population), user_roles()
        if resume_from is None:
            calls = [self._shards[i].build.remote(spec, part, extra) for i, part in parts.items()]
        else:
            calls = [self._shards[i].resume.remote(resume_from, spec, part, extra) for i, part in parts.items()]
        built = _unwrap(lambda: ray.get(calls))
        found: dict[str, tuple[str, int]] = {}
        for index, pairs in zip(parts, built, strict=False):
            for name, address in pairs:
                found[name] = (address, index)
                if resume_from is not None:
                    self._resumed.add(address)
        for name in names:  # placed in file order, so ``start`` runs on_start in it (owners publish before servers look)
            self._place(name, *found[name])
        return {n: found[n][0] for n in names}

    def snapshot(self, root: str) -> int:
        """Every shard writes its agents' snapshots under ``root`` (shared by all nodes);
        returns how many agents were written."""
        import ray

        return sum(len(done) for done in _unwrap(lambda: ray.get([s.snapshot.remote(root) for s in self._shards])))

    def _place(self, name: str, address: str, index: int) -> None:
        self._placement[address] = index
        self._names[address] = name
        self._order.append(address)

    def start(self, parallel: bool = False) -> None:
        """Connect the shards, then run every agent's on_start in the order added (owners
        publish before buyers look), or with ``parallel`` every shard's agents at once (a big
        population whose agents do not depend on each other's start)."""
        import ray

        _unwrap(lambda: ray.get([self._shards[i].add.remote(agents, self._seeded.get(i)) for i, agents in self._pending.items()]))
        self._pending.clear()
        roles: dict[str, str] = {}  # the roles the operator gave, before any agent registers one
        for hosted in _unwrap(lambda: ray.get([s.roles.remote() for s in self._shards])):
            roles.update(hosted)
        cast(OperatorRegistry, self.registry).assign_roles(roles)  # set in __init__; Runtime types it Registry
        ray.get([s.connect.remote(self._shards, self._placement) for s in self._shards])
        order = [a for a in self._order if a not in self._resumed]  # resumed agents started long ago
        if parallel:
            per_shard: dict[int, list[str]] = {}
            for address in order:
                per_shard.setdefault(self._placement[address], []).append(address)
            _unwrap(lambda: ray.get([self._shards[i].start.remote(a) for i, a in per_shard.items()]))
            return
        run: list[tuple[int, list[str]]] = []
        for address in order:  # consecutive agents of one shard start in one call
            index = self._placement[address]
            if run and run[-1][0] == index:
                run[-1][1].append(address)
            else:
                run.append((index, [address]))
        for index, addresses in run:
            _unwrap(lambda: ray.get(self._shards[index].start.remote(addresses)))  # noqa: B023

    def send(self, target: str, envelopes: list[Envelope]) -> None:
        """Inject already-sealed envelopes (tests, tools) into the target's shard."""
        import ray

        ray.get(self._shards[self._placement[target]].deliver.remote(envelopes))

    def run(self, until: Callable[[], bool] | None = None, timeout: float | None = None) -> bool:
        return wait_until(until or (lambda: True), timeout)

    def now(self) -> float:
        """The wall clock: the shards and the ledger service keep it (chain time follows it)."""
        return time.time()

    def query(self, address: str, method: str, *args: Any) -> Any:
        import ray

        return _unwrap(lambda: ray.get(self._shards[self._placement[address]].query.remote(address, method, *args)))

    def errors(self) -> dict[str, list[str]]:
        import ray

        merged: dict[str, list[str]] = {}
        for found in ray.get([s.errors.remote() for s in self._shards]):
            merged.update(found)
        return merged

    def rejections(self) -> dict[str, dict[str, int]]:
        import ray

        merged: dict[str, dict[str, int]] = {}
        for found in ray.get([s.rejections.remote() for s in self._shards]):
            merged.update(found)
        return merged

    def stats(self) -> list[dict[str, Any]]:
        import ray

        return ray.get([s.stats.remote() for s in self._shards])

    def traffic(self) -> dict[str, dict[str, dict[str, int]]]:
        """Each agent's traffic ledger by address, from every shard (see ``audit_traffic``)."""
        import ray

        merged: dict[str, dict[str, dict[str, int]]] = {}
        for found in _unwrap(lambda: ray.get([s.traffic.remote() for s in self._shards])):
            merged.update(found)
        return merged

    # -- chaos (durable runtimes) ---------------------------------------------------------
    def kill_shard(self, index: int) -> None:
        """Kill shard ``index``'s process as a crash would; a durable runtime's Ray restarts it
        and it rebuilds its agents from its journal."""
        import ray

        ray.kill(self._shards[index], no_restart=self.durable is None)

    def set_faults(self, drop_rate: float, seed: int | str = 0) -> None:
        """Have every shard lose ``drop_rate`` of the deliveries it gets from other shards
        (sent again by their senders); 0 turns it off. A restarted shard forgets it."""
        import ray

        _unwrap(lambda: ray.get([s.set_faults.remote(drop_rate, seed) for s in self._shards]))

    def quiesce(self, timeout: float = 60.0) -> bool:
        """Stop firing timers and wait until nothing is queued, unsent or unacknowledged in any
        shard (what a drain before a stop does); True once quiet."""
        import ray

        _unwrap(lambda: ray.get([s.pause.remote() for s in self._shards]))
        return wait_until(lambda: sum(_unwrap(lambda: ray.get([s.backlog.remote() for s in self._shards]))) == 0, timeout)

    def heal(self) -> list[int]:
        """Respawn on a live node every shard whose node died (a durable one recovers from its
        journal); returns their indexes."""
        return respawn_dead(self._makers, self._shards)

    def supervise(self, period: float = 1.0) -> Any:
        """Start a detached-if-this-runtime-is supervisor actor that calls ``heal`` every ``period`` s."""
        import ray

        life = {"lifetime": "detached"} if self.detached else {}
        self._supervisor = (
            ray.remote(Supervisor).options(name=f"{self.name}-supervisor", num_cpus=0, **life, **on_head()).remote(self._makers, self._shards, period)
        )
        return self._supervisor

    def shutdown(self) -> None:
        import ray

        try:  # on_stop hooks first, then the actors go
            ray.get([s.stop.remote() for s in self._shards], timeout=30)
        except Exception:  # noqa: BLE001 - a dead shard must not keep the others running
            pass
        if self._supervisor is not None:
            ray.kill(self._supervisor)
        for actor in [*self._shards, self._ledger_actor, self._registry_actor]:
            ray.kill(actor)
        self._shards.clear()
