"""RayRuntime: agents on a Ray cluster, many to an actor.

One Ray actor per agent cannot scale (on this 2-core machine an actor takes about a third of a
second and ~100 MB to start), so agents live in *shards*: each shard is one Ray actor hosting
many :class:`~agents.host.AgentHost`s, the same hosts the LocalRuntime uses. Envelopes between
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

import heapq
import itertools
import pickle
import resource
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agora.agents.agent import Agent
from agora.agents.errors import BadSignature, InjectedFault, Rejected, RuntimeFailure
from agora.agents.host import AgentHost
from agora.agents.identity import Identity, keccak256, recover_digest
from agora.agents.journal import Journal
from agora.agents.messages import Envelope
from agora.agents.registry_service import BatchedRegistry, OperatorRegistry, RegistryService
from agora.agents.runtime import Runtime, wait_until
from agora.chain import Ledger, MemoryLedger
from agora.chain.remote import LedgerService, RemoteLedger
from agora.tasks.executor import ActorClient as RemoteProxy


def _unwrap(fn: Callable[[], Any]) -> Any:
    from ray.exceptions import RayTaskError

    try:
        return fn()
    except RayTaskError as exc:
        raise exc.cause from None


LEDGER_CONCURRENCY = 32
"""Ledger calls the service runs at once: about the agent threads that can wait on it
(shards x their concurrency), so no sender queues behind another's confirmation."""

def delegation_digest(agent: str, session: str) -> bytes:
    """What an agent signs to let a shard's session key vouch for its envelopes."""
    return keccak256(f"agora-delegation\n{agent.lower()}\n{session.lower()}".encode())


class _Mailbox:
    """One agent's inbound queue and lock: whoever holds the lock drains the queue."""

    __slots__ = ("host", "queue", "lock")

    def __init__(self, host: AgentHost) -> None:
        self.host, self.queue, self.lock = host, deque(), threading.Lock()


class _Countdown:
    """The envelopes of one delivery call still to be handled."""

    __slots__ = ("left", "lock", "event")

    def __init__(self, n: int) -> None:
        self.left, self.lock, self.event = n, threading.Lock(), threading.Event()
        if n == 0:
            self.event.set()

    def done(self) -> None:
        with self.lock:
            self.left -= 1
            if self.left <= 0:
                self.event.set()

    def wait(self) -> None:
        self.event.wait()


class _Shard:
    """The actor body: hosts many agents, batches envelopes to other shards, runs timers."""

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
        import ray

        from agora.tasks.executor import RayExecutor
        from agora.tasks.store import ContentStore

        self.index, self.batch, self.ttl, self.seed = index, batch, ttl, seed
        self.linger = linger  # seconds an envelope may wait for others bound to the same shard
        self.signing = signing
        self._session = Identity.generate()  # this process's session key; dies with it
        self._delegations: dict[str, str] = {}  # hosted agent -> its signed delegation to the session key
        self._trusted: dict[str, str] = {}  # remote sender -> the session address it delegated to
        self.rejected_batches = 0
        self._node = ray.get_runtime_context().get_node_id()  # where Ray placed this shard
        self._ledger = RemoteLedger(ledger)
        self._registry = BatchedRegistry(registry)
        self._store, self._executor = ContentStore(store_root), RayExecutor(store_root, ledger=ledger)  # vaults check payment on it
        self._boxes: dict[str, _Mailbox] = {}
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix=f"shard{index}-work")  # agents' off-mailbox work
        self._placement: dict[str, int] = {}
        self._shards: list[Any] = []
        self._out: dict[int, list[Envelope]] = {}
        self._out_lock = threading.Lock()
        self._timers: list[tuple[float, int, Envelope]] = []
        self._timer_seq = itertools.count()
        self._timer_cv = threading.Condition()
        self._running = True
        self._live = threading.Event()  # timers fire only while set: once connected, until paused
        self.sent = self.received = self.handled = self.calls = self.recovered = self.dropped = 0
        self._drop_rate, self._drop_rng = 0.0, None
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
                self._registry,  # type: ignore[arg-type]
                transport=self._send,
                timer=self._arm,
                clock=time.time,
                store=self._store,
                executor=self._executor,
                seed=self.seed,
                sign=self.signing == "agent",
                ttl=self.ttl,
                background=self._pool.submit,
                persist=None if self._journal is None else (lambda address=agent.address: self._persist_now(address)),
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

    def _recover(self, state: Any) -> None:
        """Rebuild this shard after a restart: keys from the journaled populations, each agent
        from its last durable snapshot (its timers re-armed), the placement, and the outbound
        batches never acknowledged, which go out again (receivers drop what they already have
        by nonce)."""
        from agora.agents.population import from_spec, register_role

        if not state.agents:
            return
        self._meta.update(state.meta)
        keys: dict[str, Identity] = {}
        for population, names, roles in self._meta["sources"]:
            for role, factory in pickle.loads(roles).items():
                register_role(role, factory)
            keys.update({i.address: i for i in from_spec(population).identities(only=set(names)).values()})
        for key_seed, name in self._meta.get("seeded", []):
            identity = Identity.from_seed(key_seed, name)
            keys[identity.address] = identity
        for address, data in state.agents.items():
            self._journaled[address] = (0, data)
            agent, body = AgentHost.skeleton(data, keys[address])
            self._host([agent])
            self._boxes[address].host.resume(body)
        self._placement = dict(self._meta.get("placement", {}))
        self._shard_count = self._meta.get("shards", 0)
        self._unacked = dict(state.unacked)
        self._reship = sorted(self._unacked)
        self._batch_ids = itertools.count(state.next_batch)
        self.recovered = len(state.agents)
        self._guest_grace = time.time() + 30.0  # guests renew their lease within that
        if self._shard_count:
            self._live.set()

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
        self._shards, self._placement, self._shard_count = shards, placement, len(shards)
        self._live.set()
        if self._journal is not None:
            self._meta_changed.update(placement=placement, shards=len(shards))
            self._meta.update(self._meta_changed)
            self._commit()

    # -- guests: shards of another process that join a running deployment for a while --------
    def admit(self, index: int, handle: Any, addresses: list[str], lease_s: float = 30.0) -> None:
        """Guest shard ``handle`` (a gateway that joined this deployment, agents.deployment.Guest)
        hosts ``addresses`` as shard ``index``: envelopes to them go to it. A guest is not
        journaled: it renews its lease every few seconds while it stays (a shard restarted
        meanwhile learns it again), and one whose lease lapses is let go as if it had left."""
        if index < self._shard_count or index in self._guests and self._guests[index][0] != handle:
            raise RuntimeFailure(f"shard index {index} is taken")
        self._guests[index] = (handle, time.time() + lease_s, list(addresses))
        for address in addresses:
            self._placement[address] = index

    def dismiss(self, index: int) -> None:
        """Guest ``index`` left (or its lease lapsed): its agents are no longer here, and what was
        sent to them and never acknowledged is dropped (a guest keeps nothing across a restart)."""
        guest = self._guests.pop(index, None)
        for address in guest[2] if guest else []:
            if self._placement.get(address) == index:
                del self._placement[address]
        self._drop_batches(lambda dest: dest == index)

    def _drop_batches(self, doomed: Callable[[int], bool]) -> None:
        with self._journal_lock:
            dropped = [b for b, (dest, _) in self._unacked.items() if doomed(dest)]
            for batch_id in dropped:
                del self._unacked[batch_id]
            if dropped:
                self._acked.extend(dropped)  # journaled as done with

    def _lapse(self) -> None:
        now = time.time()
        for index in [i for i, (_, until, _) in self._guests.items() if until < now]:
            self.dismiss(index)
        if self._guest_grace and now > self._guest_grace:  # guests that never came back after a restart
            self._guest_grace = 0.0
            self._drop_batches(lambda dest: dest >= self._shard_count and dest not in self._guests)

    def _shard(self, index: int) -> Any:
        """Another shard's handle (a guest's as it gave it); after a restart, found again by its name."""
        guest = self._guests.get(index)
        if guest is not None:
            return guest[0]
        if len(self._shards) < self._shard_count:
            import ray

            self._shards = [ray.get_actor(f"{self.name}-shard-{i}") for i in range(self._shard_count)]
        return self._shards[index]

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
        import random

        if self._journal is None and drop_rate > 0:
            raise RuntimeFailure("dropped deliveries are only sent again between durable shards")
        if drop_rate != self._drop_rate:
            self._drop_rate, self._drop_rng = drop_rate, random.Random(f"drop:{seed}:{self.index}:{self.recovered}")

    def _lose(self) -> None:
        if self._drop_rate and self._drop_rng.random() < self._drop_rate:
            self.dropped += 1
            raise InjectedFault(f"shard {self.index} dropped a delivery (injected)")

    def deliver(self, envelopes: list[Envelope]) -> None:
        """Envelopes each signed by its own agent (from a shard signing per agent, or injected
        by the driver): every signature is checked, whatever this shard's own policy."""
        self._lose()
        self.received += len(envelopes)
        self.calls += 1
        countdown = self._countdown(len(envelopes))
        try:
            for envelope in envelopes:
                if self.signing == "session":  # these hosts' inboxes trust batch proofs; check here
                    try:
                        envelope.check().verify()
                    except Rejected as exc:
                        self._reject(envelope, exc, countdown)
                        continue
                    self._enqueue(envelope, remote=True, authenticated=True, countdown=countdown)
                else:
                    self._enqueue(envelope, remote=True, countdown=countdown)
        finally:
            self._settle(countdown)

    def deliver_batch(self, session: str, envelopes: list[Envelope], signature: str, delegations: dict[str, str]) -> None:
        """A batch signed by another shard's session key: check the new delegations, the one
        batch signature, then hand each envelope on as authenticated (or refuse it)."""
        self._lose()
        self.received += len(envelopes)
        self.calls += 1
        countdown = self._countdown(len(envelopes))
        try:
            session_lower = session.lower()
            for sender, proof in delegations.items():
                if self._trusted.get(sender) == session_lower:
                    continue  # checked before
                try:
                    if recover_digest(delegation_digest(sender, session), proof) == sender.lower():
                        self._trusted[sender] = session_lower
                except ValueError:
                    pass
            try:
                digests = b"".join(e.check().signing_bytes() for e in envelopes)
                genuine = recover_digest(keccak256(digests), signature) == session_lower
            except Exception:  # noqa: BLE001 - a malformed batch is a forged one
                genuine = False
            for envelope in envelopes:
                if genuine and self._trusted.get(envelope.sender) == session_lower:
                    self._enqueue(envelope, remote=True, authenticated=True, countdown=countdown)
                else:
                    self.rejected_batches += 1
                    self._reject(envelope, BadSignature(f"no valid session signature or delegation for {envelope.sender}"), countdown)
        finally:
            self._settle(countdown)

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

    def _ship(self, dest: int, envelopes: list[Envelope]) -> Any:
        """One Ray call to shard ``dest``: agent-signed envelopes as they are, or one session
        signature over the batch (with the delegations ``dest`` has not seen yet)."""
        if self.signing == "agent":
            return self._shard(dest).deliver.remote(envelopes)
        signature = self._session.sign_digest(keccak256(b"".join(e.signing_bytes() for e in envelopes)))
        # every batch carries its senders' delegations: batches may arrive in any order, and the
        # receiver checks each delegation only the first time it sees it
        delegations = {e.sender: self._delegations[e.sender] for e in envelopes}
        return self._shard(dest).deliver_batch.remote(self._session.address, envelopes, signature, delegations)

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
                        self._shards = []
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
                    self._shards = []

    # -- durability (a shard made with ``durable``) ----------------------------------------
    def _commit(self) -> None:
        """Make durable, in one journal record, the agents touched since the last commit, the
        batches they sent, the acknowledgements received and any change of metadata; then
        ship those batches (output commit: nothing leaves before the state that made it)."""
        assert self._journal is not None
        with self._commit_lock:
            with self._dirty_lock:
                dirty, self._dirty = self._dirty, set()
            with self._out_lock:
                dirty |= self._outbox.keys()  # a sender's envelopes go with its state
            taken = []
            for address in dirty:
                box = self._boxes[address]
                with box.lock:  # the state and exactly the envelopes it sent, together
                    taken.append(self._take(address))
                self._drain(box)
            acked, self._acked = self._acked, []
            meta, self._meta_changed = self._meta_changed, {}
            batches = self._record(taken, acked, meta)
        self._ship_batches(batches)
        self._registry.flush()

    def _take(self, address: str) -> tuple[str, int, bytes, list[Envelope]]:
        """An agent's snapshot, its order, and what it sent since the last one (its box lock held)."""
        snapshot = self._boxes[address].host.snapshot()
        seq = next(self._seq)
        with self._out_lock:
            sent = self._outbox.pop(address, [])
        return address, seq, snapshot, sent

    def _record(self, taken: list[tuple[str, int, bytes, list[Envelope]]], acked: list[int] = (), meta: dict[str, Any] | None = None) -> list[tuple[int, int, list[Envelope]]]:  # type: ignore[assignment]
        """Append one record; returns the batches it made durable, to ship. A snapshot older
        than the one already journaled for its agent (a checkpoint taken mid-handler while a
        commit was collecting) is left out; the envelopes that came with it are not."""
        assert self._journal is not None
        with self._journal_lock:
            agents: dict[str, bytes] = {}
            out: dict[int, list[Envelope]] = {}
            for address, seq, snapshot, sent in taken:
                for envelope in sent:
                    dest = self._placement.get(envelope.target)
                    if dest is not None:  # None: a guest's agent that left meanwhile
                        out.setdefault(dest, []).append(envelope)
                if seq > self._journaled.get(address, (0, b""))[0]:
                    agents[address] = snapshot
                    self._journaled[address] = (seq, snapshot)
            batches = [(next(self._batch_ids), dest, pending[i : i + self.batch]) for dest, pending in out.items() for i in range(0, len(pending), self.batch)]
            if agents or batches or acked or meta:
                self._journal.append({"agents": agents, "out": batches, "acked": list(acked), "meta": meta or {}})
                for batch_id, dest, envelopes in batches:
                    self._unacked[batch_id] = (dest, envelopes)
                for batch_id in acked:
                    self._unacked.pop(batch_id, None)
                if self._journal.due():
                    self._compact()
        return batches

    def _ship_batches(self, batches: list[tuple[int, int, list[Envelope]]]) -> None:
        for n, batch in enumerate(batches):
            try:
                self._track(*batch)
            except Exception:  # noqa: BLE001 - a receiver not found (being respawned): sent again later
                self._shards = []
                self._reship += [b[0] for b in batches[n:]]
                break

    def _persist_now(self, address: str) -> None:
        """``ctx.checkpoint()``: journal this agent now, mid-handler (its box lock is held by
        the calling handler), with what it sent so far; those envelopes leave now too."""
        self._ship_batches(self._record([self._take(address)]))

    def _touch(self, address: str) -> None:
        with self._dirty_lock:
            self._dirty.add(address)

    def _compact(self) -> None:
        """Everything journaled, as one record, under the next generation (journal lock held):
        each agent's latest journaled snapshot, the unacknowledged batches, the metadata."""
        assert self._journal is not None
        agents = {address: snapshot for address, (_, snapshot) in self._journaled.items()}
        out = [(batch_id, dest, envelopes) for batch_id, (dest, envelopes) in self._unacked.items()]
        self._journal.compact({"agents": agents, "out": out, "acked": [], "meta": dict(self._meta)})

    def _track(self, batch_id: int, dest: int, envelopes: list[Envelope]) -> None:
        ref = self._ship(dest, envelopes)
        with self._inflight_lock:
            self._inflight[ref] = batch_id

    def _collect_acks(self) -> None:
        """Batches the receivers finished (handled and journaled) are acknowledged in the next
        record; one whose receiver is gone for good goes again."""
        import ray

        with self._inflight_lock:
            refs = list(self._inflight)
        if not refs:
            return
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        for ref in ready:
            with self._inflight_lock:
                batch_id = self._inflight.pop(ref)
            try:
                ray.get(ref)
            except Exception:  # noqa: BLE001 - Ray retries across restarts; this is past them
                self._shards = []  # look the shards up again by name
                self._reship.append(batch_id)
                continue
            self._acked.append(batch_id)

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
            rows.append({"name": agent.name, "address": address, "class": type(agent).__name__, "queued": len(box.queue), "open_contracts": agent.open_contracts(), "shard": self.index, "node": self._node, "handled": box.host.handled})
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
        return {"agents": len(self._boxes), "sent": self.sent, "received": self.received, "handled": self.handled, "calls": self.calls, "queued": queued, "cpu_s": time.process_time(), "rss_mb": rss_mb, "rejected_batches": self.rejected_batches, "node": self._node, "recovered": self.recovered, "unacked": len(self._unacked), "dropped": self.dropped}


def _on_head() -> dict[str, Any]:
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
        return ray.remote(_Shard).options(**chosen).remote(index, *self.args, name=self.name, **self.kwargs)


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


class RayRuntime(Runtime):
    """Hosts agents in shard actors on the Ray cluster this process is connected to."""

    def __init__(
        self,
        ledger_factory: Callable[[], Ledger] = MemoryLedger,
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
        service = {"num_cpus": 0, "max_concurrency": 1, **life, **_on_head()}
        served = {**service, "max_concurrency": LEDGER_CONCURRENCY}  # many senders at once (see LedgerService)
        self._ledger_actor = ray.remote(LedgerService).options(name=f"{self.name}-ledger", **served).remote(ledger_factory)
        # the registry checks ratings on the ledger actor and takes the operator's writes (priors,
        # the roster of roles) by this key's signature: the actor refuses every unsigned write
        self._operator = Identity.generate()
        self._registry_actor = ray.remote(RegistryService).options(name=f"{self.name}-registry", **service).remote(registry_state, self._ledger_actor, self._operator.address)
        self.ledger = RemoteLedger(self._ledger_actor)
        self.registry = OperatorRegistry(self._registry_actor, self._operator)  # type: ignore[assignment]
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
            self._makers.append(ShardMaker(self.name, args, {"durable": self.durable, "fsync": self.fsync}, {**self.actor_options, **options}, general=not options))
        return self._makers[index].spawn(index)

    @property
    def shards(self) -> int:
        return len(self._shards)

    def add(self, agent: Agent, dedicated: dict[str, Any] | None = None, key_seed: int | str | None = None) -> str:
        """Host ``agent`` in a shard (round robin), or in a shard of its own with the Ray
        resources in ``dedicated`` (a GPU provider: ``{"num_gpus": 1}``). A durable runtime
        never journals keys: it takes an agent whose key derives from ``key_seed`` and its name
        (``Identity.from_seed(key_seed, agent.name)``), or a population (``add_population``)."""
        if agent.address in self._placement:
            raise RuntimeFailure(f"{agent.name} ({agent.address}) is already hosted")
        if self.durable is not None:
            if key_seed is None:
                raise RuntimeFailure("a durable runtime rebuilds agents' keys after a restart: use add_population, or add(agent, key_seed=...) for a key from a seed")
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
        for index, pairs in zip(parts, built):
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
        self.registry.assign_roles(roles)
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
        self._supervisor = ray.remote(Supervisor).options(name=f"{self.name}-supervisor", num_cpus=0, **life, **_on_head()).remote(self._makers, self._shards, period)
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
