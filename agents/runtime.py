"""Runtimes host agents. The interface is small and the agent code is the same in each:

- :class:`LocalRuntime`: one process, a discrete-event queue on a virtual clock, deterministic
  delivery order, seeded. Fast, for tests and simulations; time jumps to the next event and the
  ledger's clock follows it. Links may have latency, jitter and loss (as ABIDES models them),
  drawn from the run's seed; the runtime keeps a running hash of every delivered envelope, so
  two runs with one seed can be compared by one string.
- :class:`agora.agents.ray.RayRuntime`: agents in Ray actors, wall clock, for clusters.

Signing is the runtime's policy: a single-process simulation of trusted agents may turn it off
(secp256k1 in Python signs a few thousand messages a second); across processes it is always on.
"""

from __future__ import annotations

import gc
import hashlib
import heapq
import itertools
import pickle
import random
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agora.agents.agent import Agent
from agora.agents.errors import RuntimeFailure
from agora.agents.host import AgentHost
from agora.agents.inbox import Quota
from agora.agents.messages import Envelope
from agora.agents.registry import Registry
from agora.chain import Ledger
from agora.chain.ledger import LedgerReader

LedgerSource = Ledger | Callable[[], Ledger]
"""What a runtime is given to settle on: a ledger, or a factory that makes one (a Ray runtime
builds it inside its ledger service's actor; the local runtime calls a factory at once)."""


class Runtime(ABC):
    """Where agents live. Callers (the scenario runner, the hosted market, your script) use only
    this interface, so the same code runs on every runtime; what differs is declared, not tested
    by type: ``driven`` says whether the agents run only inside :meth:`run` calls on a virtual
    clock in this process (the local runtime) or on their own on the wall clock (Ray)."""

    ledger: Ledger
    registry: Registry
    driven: bool

    @abstractmethod
    def add(self, agent: Agent, *, key_seed: int | str | None = None, dedicated: dict[str, Any] | None = None) -> str:
        """Host ``agent``; returns its address. Add every agent before :meth:`start`.

        ``key_seed``: the agent's key is ``Identity.from_seed(key_seed, agent.name)``, for a
        runtime that must rebuild it after a crash (a durable RayRuntime requires it; others
        keep agents in memory and need not). ``dedicated``: resources for a process of its own
        (``{"num_gpus": 1}``) where the runtime places agents; one process has nowhere else."""

    def add_population(self, population: Any) -> dict[str, str]:
        """Host every agent of ``population`` (an :class:`~agora.agents.Population` or a
        scenario); returns name -> address, in file order."""
        return {agent.name: self.add(agent) for agent, _ in population.build()}

    @abstractmethod
    def start(self) -> None:
        """Run each agent's on_start, in the order they were added."""

    @abstractmethod
    def run(self, until: Callable[[], bool] | None = None, timeout: float | None = None) -> bool:
        """Deliver messages until ``until()`` holds (True) or no progress / time is left (False)."""

    @abstractmethod
    def now(self) -> float:
        """The runtime's clock, in seconds: virtual (local) or the wall clock (Ray)."""

    def advance(self, until: float) -> None:
        """Let the agents work until the runtime's clock reaches ``until``: a runtime on the wall
        clock waits for it (its agents run on their own); a driven one overrides this to run them."""
        time.sleep(max(0.0, until - self.now()))

    def watch(self, tap: Callable[[float, Envelope], None]) -> bool:
        """Have ``tap(at, envelope)`` see every envelope delivered; False where the runtime
        cannot (its envelopes are delivered in other processes)."""
        return False

    @abstractmethod
    def query(self, address: str, method: str, *args: Any) -> Any:
        """Read an agent's state through one of its public methods or attributes."""

    @abstractmethod
    def errors(self) -> dict[str, list[str]]:
        """Handler failures per agent name: they are logged, never fatal."""

    @abstractmethod
    def rejections(self) -> dict[str, dict[str, int]]:
        """Envelopes each agent refused, by reason (BadSignature, ReplayedMessage, ...)."""

    @abstractmethod
    def traffic(self) -> dict[str, dict[str, dict[str, int]]]:
        """Each agent's traffic ledger by address (see :func:`audit_traffic`)."""

    def shutdown(self) -> None:  # noqa: B027 - a runtime holding nothing has nothing to stop
        """Stop the agents (their on_stop hooks run) and release what the runtime holds."""


class Link(BaseModel):
    """How envelopes travel between two agents: a delay (plus uniform jitter), and a loss rate."""

    model_config = ConfigDict(frozen=True)

    latency: float = Field(default=0.0, ge=0)
    jitter: float = Field(default=0.0, ge=0)
    loss: float = Field(default=0.0, ge=0, le=1)


class LocalRuntime(Runtime):
    """All agents in this process; events ordered by (virtual time, send order)."""

    driven = True

    def __init__(
        self,
        ledger: LedgerSource,
        *,
        registry: Registry | None = None,
        store: Any = None,
        executor: Any = None,
        seed: int | str = 0,
        sign: bool = True,
        latency: float = 0.0,
        link: Link | None = None,
        ttl: float | None = 300.0,
        quota: Quota | None = None,
    ) -> None:
        if not isinstance(ledger, Ledger):
            if not callable(ledger):
                raise RuntimeFailure(f"a runtime settles on a Ledger or a factory of one, not {type(ledger).__name__}")
            ledger = ledger()
        self.ledger = ledger
        self.registry = registry or Registry()
        from agora.tasks import ContentStore, LocalExecutor

        self.store = store or ContentStore()
        self.executor = executor or LocalExecutor(self.store.root)
        if getattr(self.executor, "ledger", "absent") is None:  # vaults check payment on this ledger
            self.executor.use_ledger(LedgerReader(ledger))
        self.seed = seed
        self.sign = sign
        self.link = link or Link(latency=latency)
        self.links: dict[tuple[str, str], Link] = {}  # per (sender, target) overrides
        self._noisy = bool(self.link.jitter or self.link.loss)
        self._latency = self.link.latency
        self.ttl = ttl
        self.quota = quota
        self.clock = self.epoch = float(ledger.now())  # the log records time since the epoch
        self._hosts: dict[str, AgentHost] = {}
        self.tap: Callable[[float, Envelope], None] | None = None  # sees every envelope delivered (a run's message records)
        self._queue: list[tuple[float, int, Envelope]] = []  # timers and jittered links
        self._fifo: deque[tuple[float, int, Envelope]] = deque()  # constant-delay links, already in order
        self._seq = itertools.count()
        self._rng = random.Random(f"{seed}:links")
        self._log = hashlib.blake2b(digest_size=16)
        self._pending: list[tuple] = []  # delivered envelopes not yet hashed (hashed in batches)
        self.delivered = 0
        self.lost = 0

    def now(self) -> float:
        return self.clock

    def add(self, agent: Agent, *, key_seed: int | str | None = None, dedicated: dict[str, Any] | None = None) -> str:
        """Host ``agent`` in this process (``key_seed`` and ``dedicated``: see :class:`Runtime`;
        agents here live in memory and share the one process)."""
        if agent.address in self._hosts:
            raise RuntimeFailure(f"{agent.name} ({agent.address}) is already hosted")
        self._hosts[agent.address] = self._host(agent)
        return agent.address

    def snapshot(self, store: Any) -> list[str]:
        """Write every agent's snapshot to ``store`` (an agents.snapshot.SnapshotStore)."""
        for address, host in self._hosts.items():
            store.put(f"agent-{address}", host.snapshot())
        return list(self._hosts)

    def restore(self, store: Any, identity: Callable[[str], Any]) -> list[str]:
        """Host every agent in ``store`` again, as it was, keyed by ``identity(address)`` (keys
        never sit in snapshots). Call instead of ``add``; ``start`` is not run again."""
        restored = []
        for key in store.keys("agent-"):
            data = store.get(key)
            agent, body = AgentHost.skeleton(data, identity(key.removeprefix("agent-")))
            if agent.address in self._hosts:
                raise RuntimeFailure(f"{agent.name} ({agent.address}) is already hosted")
            host = self._hosts[agent.address] = self._host(agent)
            host.resume(body)
            restored.append(agent.address)
        return restored

    def _host(self, agent: Agent) -> AgentHost:
        return AgentHost(
            agent,
            self.ledger,
            self.registry,
            transport=self._travel,
            timer=lambda delay, env: self._push(self.clock + delay, env),
            clock=self.now,
            store=self.store,
            executor=self.executor,
            seed=self.seed,
            sign=self.sign,
            ttl=self.ttl,
            quota=self.quota,
        )

    def set_link(self, sender: str, target: str, link: Link) -> None:
        """Give one direction between two agents its own latency and loss."""
        self.links[(sender, target)] = link

    def _travel(self, envelope: Envelope) -> None:
        if envelope.target not in self._hosts:  # refused in the sender's handler, as a Ray shard refuses it
            raise RuntimeFailure(f"no agent {envelope.target} in this runtime")
        if not self.links and not self._noisy:
            # a constant delay on a monotonic clock arrives in send order: a FIFO, no heap needed
            self._fifo.append((self.clock + self._latency, next(self._seq), envelope))
            return
        link = self.links.get((envelope.sender, envelope.target), self.link)
        delay = link.latency
        if link is not self.link or self._noisy:
            rng = self._rng
            if link.loss and rng.random() < link.loss:
                self.lost += 1
                return
            delay += rng.uniform(0.0, link.jitter) if link.jitter else 0.0
            heapq.heappush(self._queue, (self.clock + delay, next(self._seq), envelope))
            return
        # a constant delay on a monotonic clock arrives in send order: a FIFO, no heap needed
        self._fifo.append((self.clock + delay, next(self._seq), envelope))

    def _push(self, at: float, envelope: Envelope) -> None:
        heapq.heappush(self._queue, (at, next(self._seq), envelope))

    def log_hash(self) -> str:
        """A hash of every envelope delivered so far, in order (time since the runtime's epoch,
        sender, target, schema, nonce, payload): one seed, one hash."""
        self._flush_log()
        return self._log.hexdigest()

    def _flush_log(self) -> None:
        pending = self._pending
        if pending:
            self.delivered += len(pending)
            # pickle (C) memoizes shared objects by identity, which the program fixes, not refcounts:
            # equal logs give equal bytes
            self._log.update(pickle.dumps(pending, 5))
            pending.clear()

    def start(self, only: list[str] | None = None) -> None:
        """Run on_start of every agent (or of the ``only`` addresses: agents added later)."""
        for address, host in self._hosts.items():
            if only is None or address in only:
                host.start()

    def watch(self, tap: Callable[[float, Envelope], None]) -> bool:
        self.tap = tap
        return True

    def advance(self, until: float) -> None:
        """Deliver everything due by ``until``, then let the virtual clock stand there (time
        passes on an idle market too: deadlines come due)."""
        self.run(timeout=max(0.0, until - self.clock))
        if self.clock < until:
            self.clock = until
            self.ledger.sync_time(int(until))

    def context(self, address: str) -> Any:
        """The Context agent ``address`` acts through (scripts speak for an agent with it)."""
        return self._hosts[address].ctx

    def run(self, until: Callable[[], bool] | None = None, timeout: float | None = None) -> bool:
        """Process events in order; ``timeout`` is in virtual seconds from now."""
        limit = None if timeout is None else self.clock + timeout
        queue, fifo, hosts, pending = self._queue, self._fifo, self._hosts, self._pending
        log, pop, popleft, epoch, tap = pending.append, heapq.heappop, fifo.popleft, self.epoch, self.tap
        synced = int(self.clock)
        self.ledger.sync_time(synced)
        clock = self.clock
        # every message allocates a few short-lived objects; CPython's default young generation
        # (700) would run a collection every ~100 messages, scanning them all. A larger one for
        # the run's duration: ~5% more messages a second at 1,000 agents, restored afterwards
        thresholds = gc.get_threshold()
        gc.set_threshold(max(thresholds[0], 50_000), *thresholds[1:])
        try:
            while True:
                if fifo:
                    head = fifo[0]
                    from_heap = bool(queue) and queue[0] < head
                    if from_heap:
                        head = queue[0]
                elif queue:
                    head, from_heap = queue[0], True
                else:
                    break
                if until is not None and until():
                    return True
                at = head[0]
                if limit is not None and at > limit:
                    break
                if from_heap:
                    pop(queue)
                else:
                    popleft()
                envelope = head[2]
                if at > clock:
                    self.clock = clock = at
                    if int(at) != synced:  # the ledger follows the virtual clock
                        synced = int(at)
                        self.ledger.sync_time(synced)
                host = hosts.get(envelope.target)
                if host is None:
                    raise RuntimeFailure(f"message for unknown agent {envelope.target}")
                log((at - epoch, envelope.sender, envelope.target, envelope.schema_digest, envelope.nonce, envelope.payload))
                if len(pending) >= 4096:
                    self._flush_log()
                if tap is not None:
                    tap(at, envelope)
                host.deliver(envelope, clock)
        finally:
            gc.set_threshold(*thresholds)
            self._flush_log()
        return until() if until is not None else not (queue or fifo)

    def query(self, address: str, method: str, *args: Any) -> Any:
        return self._hosts[address].query(method, *args)

    def agent(self, address: str) -> Agent:
        return self._hosts[address].agent

    def errors(self) -> dict[str, list[str]]:
        return {h.agent.name: list(h.errors) for h in self._hosts.values() if h.errors}

    def rejections(self) -> dict[str, dict[str, int]]:
        """Envelopes each agent refused, by reason (BadSignature, ReplayedMessage, ...)."""
        return {h.agent.name: dict(h.inbox.rejected) for h in self._hosts.values() if h.inbox.rejected}

    def traffic(self) -> dict[str, dict[str, dict[str, int]]]:
        """Each agent's traffic ledger by address (see ``audit_traffic``)."""
        return {address: h.traffic() for address, h in self._hosts.items()}

    def shutdown(self) -> None:
        for host in self._hosts.values():
            host.stop()


def wait_until(until: Callable[[], bool], timeout: float | None, poll: float = 0.05) -> bool:
    """Poll ``until`` in wall time (runtimes whose agents run elsewhere)."""
    end = None if timeout is None else time.monotonic() + timeout
    while not until():
        if end is not None and time.monotonic() > end:
            return False
        time.sleep(poll)
    return True


class TrafficAudit(BaseModel):
    """Every envelope an agent's transport took, matched against its target's inbox: each must
    be admitted once or refused once (expired, over quota, forged); redeliveries refused as
    replays are counted apart. ``lost``: sent, never admitted nor refused; ``twice``: admitted
    more often than sent. Both are zero in a correct run, whatever failed on the way."""

    sent: int
    admitted: int
    refused: int
    replays: int
    lost: int
    twice: int
    pairs: int
    uneven: list[tuple[str, str, int, int]] = []  # (sender, target, sent, admitted + refused) that differ

    @property
    def exact(self) -> bool:
        return self.lost == 0 and self.twice == 0


def audit_traffic(traffic: dict[str, dict[str, dict[str, int]]]) -> TrafficAudit:
    """Audit a runtime's ``traffic()``, taken once nothing is in flight any more."""
    sent = admitted = refused = replays = lost = twice = pairs = 0
    uneven: list[tuple[str, str, int, int]] = []
    empty: dict[str, int] = {}
    for address, mine in traffic.items():
        admitted += sum(mine["admitted"].values())
        refused += sum(mine["refused"].values())
        replays += sum(mine["replays"].values())
        for target, n in mine["sent"].items():
            theirs = traffic.get(target, {})
            seen = theirs.get("admitted", empty).get(address, 0) + theirs.get("refused", empty).get(address, 0)
            sent, pairs = sent + n, pairs + 1
            if seen != n:
                lost, twice = lost + max(0, n - seen), twice + max(0, seen - n)
                uneven.append((address, target, n, seen))
    return TrafficAudit(sent=sent, admitted=admitted, refused=refused, replays=replays, lost=lost, twice=twice, pairs=pairs, uneven=uneven[:20])
