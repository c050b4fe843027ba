"""A shard's journal: what makes a durable shard come back whole after a crash.

A shard returns from a delivery only after the envelopes in it were handled and the resulting
agent states journaled (:mod:`agora.agents.journal`), and sends each envelope only with the
journaled state of the agent that sent it; it remembers each batch it sent until the receiver
returns, and sends it again after its own restart. A restarted shard rebuilds its agents from the
journal (keys from their population, never from the journal) with their replay windows, so every
redelivered envelope is dropped by nonce: none is lost, none handled twice."""

from __future__ import annotations

import itertools
import pickle
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from agora.agents.agent import Agent
from agora.agents.host import AgentHost
from agora.agents.identity import Identity
from agora.agents.journal import Journal
from agora.agents.messages import Envelope
from agora.agents.ray.peers import Peers
from agora.agents.ray.registry import BatchedRegistry

if TYPE_CHECKING:
    from agora.agents.ray.shard import _Mailbox


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


class Durability:
    """Journal records, recovery and acknowledgements, for a shard made with ``durable``."""

    _journal: Journal | None
    _journal_lock: threading.Lock
    _commit_lock: threading.Lock
    _dirty: set[str]
    _dirty_lock: threading.Lock
    _out_lock: threading.Lock
    _outbox: dict[str, list[Envelope]]
    _unacked: dict[int, tuple[int, list[Envelope]]]
    _inflight: dict[Any, int]
    _inflight_lock: threading.Lock
    _acked: list[int]
    _reship: list[int]
    _meta: dict[str, Any]
    _meta_changed: dict[str, Any]
    _journaled: dict[str, tuple[int, bytes]]
    _placement: dict[str, int]
    _peers: Peers
    _shard_count: int
    _guest_grace: float
    _live: threading.Event
    _seq: Iterator[int]
    _batch_ids: Iterator[int]
    batch: int
    recovered: int
    # provided by the shard that mixes this class in (agora.agents.ray.shard.Shard)
    _boxes: dict[str, _Mailbox]
    _registry: BatchedRegistry
    _host: Callable[[list[Agent]], list[str]]
    _drain: Callable[[_Mailbox], None]
    _ship: Callable[[int, list[Envelope]], Any]

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

    def _drop_batches(self, doomed: Callable[[int], bool]) -> None:
        with self._journal_lock:
            dropped = [b for b, (dest, _) in self._unacked.items() if doomed(dest)]
            for batch_id in dropped:
                del self._unacked[batch_id]
            if dropped:
                self._acked.extend(dropped)  # journaled as done with

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

    def _record(
        self, taken: list[tuple[str, int, bytes, list[Envelope]]], acked: Sequence[int] = (), meta: dict[str, Any] | None = None
    ) -> list[tuple[int, int, list[Envelope]]]:
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
                self._peers.forget()
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
        with self._inflight_lock:
            refs = list(self._inflight)
        if not refs:
            return
        for ref in self._peers.finished(refs):
            with self._inflight_lock:
                batch_id = self._inflight.pop(ref)
            try:
                self._peers.outcome(ref)
            except Exception:  # noqa: BLE001 - Ray retries across restarts; this is past them
                self._peers.forget()  # look the shards up again by name
                self._reship.append(batch_id)
                continue
            self._acked.append(batch_id)
