"""One shard: a Ray actor's body hosting many agents (see :mod:`agora.agents.ray.runtime`).

Inside a shard each agent has its own queue and lock, and the actor runs several calls at once
(threads): a handler that blocks on the ledger or a job holds only its own agent; the others keep
being served. Envelopes to agents of other shards leave in batches (``batch`` at most, or after
``linger`` seconds); timers fire from one thread while the shard is live."""

from __future__ import annotations

import functools
import heapq
import itertools
import random
import resource
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agora.agents.agent import Agent
from agora.agents.errors import InjectedFault, Rejected, RuntimeFailure
from agora.agents.host import AgentHost
from agora.agents.identity import Identity
from agora.agents.journal import Journal
from agora.agents.messages import Envelope
from agora.agents.ray.durable import Durability, _Countdown
from agora.agents.ray.peers import Peers
from agora.agents.ray.transport import SessionTransport, delegation_digest


class _Mailbox:
    """One agent's inbound queue and lock: whoever holds the lock drains the queue."""

    __slots__ = ("host", "queue", "lock")

    def __init__(self, host: AgentHost) -> None:
        self.host, self.lock = host, threading.Lock()
        # (envelope, from another shard, authenticated by its batch, the delivery's countdown)
        self.queue: deque[tuple[Envelope, bool, bool, _Countdown | None]] = deque()


class Shard(SessionTransport, Durability):
    """The actor body: hosts many agents, batches envelopes to other shards, runs timers.

    Session signing and guest shards live in :class:`SessionTransport`, the journal in
    :class:`Durability`; this class hosts the agents and moves their envelopes."""

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
        *,
        peers: Peers,
        executor: Any,
    ) -> None:
        """A shard hosting agents that settle on ``ledger`` and read and write ``registry`` (a
        registry face with ``flush``: writes are batched), reaching other shards through
        ``peers`` and running jobs on ``executor``. :class:`RayShard` builds these from the
        runtime's actor handles; tests build them in one process."""
        from agora.tasks.store import ContentStore

        self.index, self.batch, self.ttl, self.seed = index, batch, ttl, seed
        self.linger = linger  # seconds an envelope may wait for others bound to the same shard
        self.signing = signing
        self._session = Identity.generate()  # this process's session key; dies with it
        self._delegations: dict[str, str] = {}  # hosted agent -> its signed delegation to the session key
        self._trusted: dict[str, str] = {}  # remote sender -> the session address it delegated to
        self.rejected_batches = 0
        self._peers = peers
        self._node = peers.node  # where this shard runs
        self._ledger, self._registry = ledger, registry
        self._store, self._executor = ContentStore(store_root), executor
        self._boxes: dict[str, _Mailbox] = {}
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix=f"shard{index}-work")  # agents' off-mailbox work
        self._placement: dict[str, int] = {}
        self._out: dict[int, list[Envelope]] = {}
        self._out_lock = threading.Lock()
        self._timers: list[tuple[float, int, Envelope]] = []
        self._timer_seq = itertools.count()
        self._timer_cv = threading.Condition()
        self._running = True
        self._live = threading.Event()  # timers fire only while set: once connected, until paused
        self.sent = self.received = self.handled = self.calls = self.recovered = self.dropped = 0
        self._drop_rate = 0.0
        self._drop_rng: random.Random | None = None
        self.name = name
        self._shard_count = 0
        # durability (off unless ``durable`` names a folder): see agents.journal
        self._journal: Journal | None = None
        self._dirty: set[str] = set()  # agents whose state changed since the last commit
        self._dirty_lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self._unacked: dict[int, tuple[int, list[Envelope]]] = {}  # shipped, not yet acknowledged
        self._outbox: dict[str, list[Envelope]] = {}  # sender -> what it sent since its last journaled state
        self._inflight: dict[Any, int] = {}  # Ray reference of a delivery -> its batch id
        self._inflight_lock = threading.Lock()
        self._acked: list[int] = []
        self._meta: dict[str, Any] = {"sources": []}
        self._meta_changed: dict[str, Any] = {}
        self._batch_ids = itertools.count()
        self._reship: list[int] = []
        self._seq = itertools.count(1)  # snapshots in the order taken: an older one never overwrites a newer
        self._journaled: dict[str, tuple[int, bytes]] = {}  # agent -> (seq, bytes) of its latest journaled snapshot
        self._journal_lock = threading.Lock()  # journal writes (commits, checkpoints mid-handler, compaction)
        self._guests: dict[int, tuple[Any, float, list[str]]] = {}  # index -> (handle, lease end, addresses) of guest shards
        self._guest_grace = 0.0  # after a restart: until when journaled batches to unknown guests wait for them
        if durable is not None:
            self._journal = Journal(f"{durable}/shard-{index}", fsync=fsync)
            self._recover(self._journal.recover())
        threading.Thread(target=self._timer_loop, daemon=True, name=f"shard{index}-timers").start()
        threading.Thread(target=self._flush_loop, daemon=True, name=f"shard{index}-flush").start()

    # -- hosting --------------------------------------------------------------------------
    def add(self, agents: list[Agent], seeded: list[tuple[int | str, str]] | None = None) -> list[str]:
        """Host agents built elsewhere; a durable shard takes only those whose keys derive from
        a seed and their name (``seeded``: (seed, name) of each), journaled so a restart rebuilds them."""
        if self._journal is None:
            return self._host(agents)
        known = {name for _, name in seeded or []}
        missing = [a.name for a in agents if a.name not in known]
        if missing:
            raise RuntimeFailure(f"a durable shard rebuilds its agents' keys after a restart: {', '.join(missing)} came without a key seed")
        addresses = self._host(agents)
        self._meta["seeded"] = [*self._meta.get("seeded", []), *(seeded or [])]
        self._meta_changed["seeded"] = self._meta["seeded"]
        for address in addresses:
            self._touch(address)
        self._commit()
        return addresses

    def _host(self, agents: list[Agent]) -> list[str]:
        for agent in agents:
            if agent.address in self._boxes:
                raise RuntimeFailure(f"{agent.name} ({agent.address}) is already hosted")
            host = AgentHost(
                agent,
                self._ledger,
                self._registry,  # type: ignore[arg-type]  # the batched face, not a Registry: it has every read the host uses
                transport=self._send,
                timer=self._arm,
                clock=time.time,
                store=self._store,
                executor=self._executor,
                seed=self.seed,
                sign=self.signing == "agent",
                ttl=self.ttl,
                background=self._pool.submit,
                persist=None if self._journal is None else functools.partial(self._persist_now, agent.address),
            )
            if self.signing == "session":
                self._delegations[agent.address] = agent.identity.sign_digest(delegation_digest(agent.address, self._session.address))
            self._boxes[agent.address] = _Mailbox(host)
        return [a.address for a in agents]

    def build(self, population: dict[str, Any], names: list[str], roles: dict[str, Any]) -> list[tuple[str, str]]:
        """Build the named agents of a population here (keys derived in this process), with
        the driver's user-registered roles."""
        from agora.agents.population import from_spec, register_role

        for role, factory in roles.items():
            register_role(role, factory)
        built = from_spec(population).build(only=set(names))
        self._host([agent for agent, _ in built])
        self._hosted_from(population, names, roles, [agent.address for agent, _ in built])
        return [(agent.name, agent.address) for agent, _ in built]

    def _hosted_from(self, population: dict[str, Any], names: list[str], roles: dict[str, Any], addresses: list[str]) -> None:
        """Durable shards journal where their agents' keys come from (the population, never the
        keys), and the agents themselves, before the call that hosted them returns."""
        if self._journal is None:
            return
        from ray import cloudpickle  # user roles may be defined in a script: by value, as Ray ships them

        self._meta["sources"] = [*self._meta["sources"], (population, list(names), cloudpickle.dumps(dict(roles)))]
        self._meta_changed["sources"] = self._meta["sources"]
        for address in addresses:
            self._touch(address)
        self._commit()

    def resume(self, root: str, population: dict[str, Any], names: list[str], roles: dict[str, Any]) -> list[tuple[str, str]]:
        """Host the named agents again from their snapshots under ``root``, keyed from the
        population (keys never sit in snapshots)."""
        from agora.agents.population import from_spec, register_role
        from agora.agents.snapshot import FolderStore

        for role, factory in roles.items():
            register_role(role, factory)
        store, restored = FolderStore(root), []
        for name, identity in from_spec(population).identities(only=set(names)).items():
            data = store.get(f"agent-{identity.address}")
            if data is None:
                raise RuntimeFailure(f"no snapshot of {name} ({identity.address}) under {root}")
            agent, body = AgentHost.skeleton(data, identity)
            self._host([agent])
            self._boxes[agent.address].host.resume(body)
            restored.append((name, agent.address))
        self._hosted_from(population, names, roles, [address for _, address in restored])
        return restored

    def snapshot(self, root: str) -> list[str]:
        """Write each hosted agent's snapshot under ``root`` (a folder every node can reach)."""
        from agora.agents.snapshot import FolderStore

        self._flush_all()
        store = FolderStore(root)
        for address, box in self._boxes.items():
            with box.lock:
                store.put(f"agent-{address}", box.host.snapshot())
            self._drain(box)
        return list(self._boxes)

    def connect(self, shards: list[Any], placement: dict[str, int]) -> None:
        self._peers.connect(shards)
        self._placement, self._shard_count = placement, len(shards)
        self._live.set()
        if self._journal is not None:
            self._meta_changed.update(placement=placement, shards=len(shards))
            self._meta.update(self._meta_changed)
            self._commit()

    # -- guests: shards of another process that join a running deployment for a while --------
    def _shard(self, index: int) -> Any:
        """Another shard's handle (a guest's as it gave it); after a restart, found again by its name."""
        guest = self._guests.get(index)
        if guest is not None:
            return guest[0]
        return self._peers.handle(index, self._shard_count)

    def start(self, addresses: list[str]) -> None:
        try:
            for address in addresses:
                box = self._boxes[address]
                with box.lock:
                    box.host.start()
                if self._journal is not None:
                    self._touch(address)
                self._drain(box)
        finally:
            self._flush_all()

    def stop(self) -> None:
        self._running = False
        for box in self._boxes.values():
            with box.lock:
                box.host.stop()
        self._flush_all()
        if self._journal is not None:
            self._journal.close()

    # -- traffic --------------------------------------------------------------------------
    def set_faults(self, drop_rate: float, seed: int | str = 0) -> None:
        """Chaos runs: lose this share of the deliveries from other shards before accepting
        them (the sender hears a failure and sends the batch again; only a durable shard's
        senders do, so faults are for durable runtimes). Forgotten at a restart."""
        if self._journal is None and drop_rate > 0:
            raise RuntimeFailure("dropped deliveries are only sent again between durable shards")
        if drop_rate != self._drop_rate:
            self._drop_rate, self._drop_rng = drop_rate, random.Random(f"drop:{seed}:{self.index}:{self.recovered}")

    def _lose(self) -> None:
        if self._drop_rate and self._drop_rng is not None and self._drop_rng.random() < self._drop_rate:
            self.dropped += 1
            raise InjectedFault(f"shard {self.index} dropped a delivery (injected)")

    def _countdown(self, n: int) -> _Countdown | None:
        return _Countdown(n) if self._journal is not None else None

    def _settle(self, countdown: _Countdown | None) -> None:
        """End of a delivery call. A durable shard returns (acknowledges the batch, so Ray will
        not retry it) only once every envelope in it was handled and that state is journaled."""
        if countdown is not None:
            countdown.wait()
            self._commit()
        else:
            self._registry.flush()  # envelopes wait for the flusher, so replies travel together

    def _reject(self, envelope: Envelope, exc: Rejected, countdown: _Countdown | None = None) -> None:
        box = self._boxes.get(envelope.target)
        if box is not None:
            with box.lock:
                box.host.reject(envelope, exc)
            self._drain(box)
        if countdown is not None:
            countdown.done()

    def _enqueue(self, envelope: Envelope, remote: bool, authenticated: bool = False, countdown: _Countdown | None = None) -> None:
        box = self._boxes.get(envelope.target)
        if box is None:
            if countdown is not None:
                countdown.done()
            return
        box.queue.append((envelope, remote, authenticated, countdown))
        self._drain(box)

    def _drain(self, box: _Mailbox) -> None:
        """Handle what waits in ``box`` unless another thread holds it. Whoever holds a box's
        lock calls this after letting go, so nothing queued meanwhile is left behind."""
        durable = self._journal is not None
        while box.queue:
            if not box.lock.acquire(blocking=False):
                return  # the holder drains what we queued
            try:
                while box.queue:
                    env, from_afar, proven, countdown = box.queue.popleft()
                    try:
                        box.host.deliver(env, remote=from_afar, authenticated=proven)
                    finally:
                        self.handled += 1
                        if durable:
                            self._touch(env.target)  # before the countdown: an ack waits for this state
                        if countdown is not None:
                            countdown.done()
            finally:
                box.lock.release()

    def _send(self, envelope: Envelope) -> None:
        dest = self._placement.get(envelope.target)
        if dest is None:
            raise RuntimeFailure(f"no agent {envelope.target} in this runtime")
        self.sent += 1
        if self._journal is not None:  # leaves with the sender's next journaled state, never before
            with self._out_lock:
                self._outbox.setdefault(envelope.sender, []).append(envelope)
            return
        if dest == self.index:
            self._enqueue(envelope, remote=False)
            return
        with self._out_lock:
            pending = self._out.setdefault(dest, [])
            pending.append(envelope)
            full = len(pending) >= self.batch
            if full:
                self._out[dest] = []
        if full:
            self._ship(dest, pending)

    def _flush_all(self) -> None:
        if self._journal is not None:
            self._commit()
            return
        with self._out_lock:
            out, self._out = self._out, {}
        for dest, pending in out.items():
            for i in range(0, len(pending), self.batch):
                self._ship(dest, pending[i : i + self.batch])
        self._registry.flush()

    def _flush_loop(self) -> None:
        last_acks = 0.0
        while self._running:
            time.sleep(self.linger)
            if self._guests or self._guest_grace:
                self._lapse()
            if self._journal is None:
                if self._out:
                    self._flush_all()
                continue
            if self._reship:  # after a restart: what was journaled as sent but never acknowledged
                again, self._reship = [b for b in self._reship if b in self._unacked], []  # a dismissed guest's are gone
                for n, batch_id in enumerate(again):
                    try:
                        self._track(batch_id, *self._unacked[batch_id])
                    except Exception:  # noqa: BLE001 - the receiver is being respawned: try again shortly
                        self._peers.forget()
                        self._reship += again[n:]
                        time.sleep(0.2)
                        break
            if time.time() - last_acks > 0.02:
                last_acks = time.time()
                self._collect_acks()
            if self._dirty or self._outbox or self._acked:
                try:
                    self._commit()
                except Exception:  # noqa: BLE001 - e.g. a receiver being respawned; the batches wait in _unacked
                    self._peers.forget()

    # -- durability (a shard made with ``durable``) ----------------------------------------
    def _arm(self, delay: float, envelope: Envelope) -> None:
        with self._timer_cv:
            heapq.heappush(self._timers, (time.time() + delay, next(self._timer_seq), envelope))
            self._timer_cv.notify()

    def _timer_loop(self) -> None:
        while self._running:
            if not self._live.is_set():
                self._live.wait(0.5)
                continue
            with self._timer_cv:
                wait = self._timers[0][0] - time.time() if self._timers else 0.5
                if wait > 0:
                    self._timer_cv.wait(min(wait, 0.5))
                    continue
                _, _, envelope = heapq.heappop(self._timers)
            self._enqueue(envelope, remote=False)

    def pause(self) -> None:
        """Fire no more timers (they stay armed, and in snapshots): the first step of a drain."""
        self._live.clear()

    def backlog(self) -> int:
        """Work not yet done: envelopes queued here or waiting to leave, batches not yet
        acknowledged (zero, with timers paused, means drained)."""
        self._flush_all()
        with self._inflight_lock:
            inflight = len(self._inflight)
        outbox = sum(len(p) for p in self._outbox.values())
        return sum(len(b.queue) for b in self._boxes.values()) + sum(len(p) for p in self._out.values()) + outbox + inflight + len(self._unacked)

    # -- reading --------------------------------------------------------------------------
    def query(self, address: str, method: str, *args: Any) -> Any:
        box = self._boxes[address]
        try:
            with box.lock:
                return box.host.query(method, *args)
        finally:
            self._drain(box)

    def roles(self) -> dict[str, str]:
        """The role of each agent hosted here (its class's): the runtime's roster for the registry."""
        return {address: type(box.host.agent).role for address, box in self._boxes.items()}

    def status(self) -> list[dict[str, Any]]:
        """One row per hosted agent, for ``agora status``."""
        rows = []
        for address, box in self._boxes.items():
            agent = box.host.agent
            rows.append(
                {
                    "name": agent.name,
                    "address": address,
                    "class": type(agent).__name__,
                    "queued": len(box.queue),
                    "open_contracts": agent.open_contracts(),
                    "shard": self.index,
                    "node": self._node,
                    "handled": box.host.handled,
                }
            )
        return rows

    def errors(self) -> dict[str, list[str]]:
        found = {b.host.agent.name: list(b.host.errors) for b in self._boxes.values() if b.host.errors}
        if self._registry.errors:
            found[f"shard{self.index}"] = list(self._registry.errors)
        return found

    def rejections(self) -> dict[str, dict[str, int]]:
        return {b.host.agent.name: dict(b.host.inbox.rejected) for b in self._boxes.values() if b.host.inbox.rejected}

    def traffic(self) -> dict[str, dict[str, dict[str, int]]]:
        out = {}
        for address, box in self._boxes.items():
            with box.lock:
                out[address] = box.host.traffic()
        return out

    def stats(self) -> dict[str, Any]:
        queued = sum(len(b.queue) for b in self._boxes.values())
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # peak resident memory, Linux KiB
        return {
            "agents": len(self._boxes),
            "sent": self.sent,
            "received": self.received,
            "handled": self.handled,
            "calls": self.calls,
            "queued": queued,
            "cpu_s": time.process_time(),
            "rss_mb": rss_mb,
            "rejected_batches": self.rejected_batches,
            "node": self._node,
            "recovered": self.recovered,
            "unacked": len(self._unacked),
            "dropped": self.dropped,
        }
