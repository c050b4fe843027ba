"""AgentHost: what every runtime does for one agent, written once.

It builds the agent's :class:`~agora.agents.agent.Context`, seals outgoing messages in envelopes
(signed, with a nonce and an expiry, when the runtime's policy says so), passes incoming ones
through the agent's :class:`~agora.agents.inbox.Inbox` (signature, replay, expiry, size, quota,
schema), and dispatches them to the handlers, enforcing declared replies and driving ``async``
handlers. A refused envelope or a handler that raises is logged and recorded; the agent keeps
running. Runtimes differ only in how an envelope travels (``transport``), how a timer fires
(``timer``) and what clock they keep.

A timer is an envelope the host sealed to its own agent and keeps in ``timers`` until it is
handled; the runtime hands that very object back to ``deliver`` when it is due. That identity is
what marks the scheduling path: an envelope that is not the armed object (another sender's, or a
copy of one of ours that came over the network) never counts as a timer, so an internal message
type in it is refused at the inbox (``InternalMessage``) and nothing of the agent changes.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import pickle
import random
from collections.abc import Callable, Coroutine
from typing import Any

import agora.agents.snapshot as snapshots
from agora.agents.agent import Agent, Context
from agora.agents.errors import Rejected, UndeclaredReply, UnknownMessage
from agora.agents.inbox import Inbox, Quota
from agora.agents.messages import _DIGESTS, Envelope, Message
from agora.agents.registry import Registry
from agora.agents.registry_access import face
from agora.agents.storage import Storage
from agora.agents.wallet import Wallet
from agora.chain import Ledger

Transport = Callable[[Envelope], None]
Timer = Callable[[float, Envelope], None]


class IntervalTick(Message):
    """A host's timer to itself for the agent's ``index``-th interval handler (internal)."""

    internal = True  # the docstring above is part of the schema digest: changing it orphans armed ticks in snapshots

    index: int


_TYPES: dict[type, dict[str, type[Message]]] = {}


def _types_of(cls: type[Agent]) -> dict[str, type[Message]]:
    """Schema digest -> type for what ``cls`` handles plus the host's own ticks; one per class."""
    types = _TYPES.get(cls)
    if types is None:
        types = _TYPES[cls] = cls.message_types()
        types[IntervalTick.schema_digest()] = IntervalTick
    return types


class AgentHost:
    def __init__(
        self,
        agent: Agent,
        ledger: Ledger,
        registry: Registry,
        *,
        transport: Transport,
        timer: Timer,
        clock: Callable[[], float],
        store: Any = None,
        executor: Any = None,
        seed: int | str = 0,
        sign: bool = True,
        ttl: float | None = 300.0,
        quota: Quota | None = None,
        storage: Storage | None = None,
        background: Callable[[Callable[[], None]], object] | None = None,
        persist: Callable[[], None] | None = None,
    ) -> None:
        self.agent = agent
        self._address = agent.address
        self.sign = sign
        self.ttl = ttl
        self._transport = transport
        self._timer = timer
        self._clock = clock
        self._nonce = itertools.count()
        self._routes = type(agent).dispatch_table()
        self._intervals = agent.intervals()
        self.inbox = Inbox(agent.address, _types_of(type(agent)), quota or getattr(agent, "quota", None) or Quota(), verify=sign)
        self._replying: tuple[str, frozenset[type[Message]] | None] | None = None
        self.timers: dict[int, tuple[float, Envelope]] = {}  # nonce -> (due, envelope): armed, not yet handled
        self._loop: asyncio.AbstractEventLoop | None = None
        self.errors: list[str] = []
        self.handled = 0  # messages admitted and dispatched over the agent's life (kept in snapshots)
        # the traffic ledger (kept in snapshots): envelopes sent to each peer, and from each
        # sender those admitted, those refused as replays (redeliveries) and those refused for
        # any other reason; summed over a run, every sent envelope is admitted or refused once
        self.sent_to: dict[str, int] = {}
        self.admitted_from: dict[str, int] = {}
        self.replays_from: dict[str, int] = {}
        self.refused_from: dict[str, int] = {}
        self.log = logging.getLogger(f"agora.agent.{agent.name}")
        wallet = Wallet(agent.identity, ledger)
        # the agent's own faces: registry writes and executor jobs only in its own name (issue 19)
        executor_face = getattr(executor, "face", None)
        self.ctx = Context(
            address=agent.address,
            name=agent.name,
            wallet=wallet,
            registry=face(registry, agent, wallet.ledger),
            send=self._send,
            schedule=self._schedule,
            now=clock,
            rng=random.Random(f"{seed}:{agent.name}"),
            store=store,
            executor=executor if executor_face is None else executor_face(agent, wallet.ledger),
            log=self.log,
            storage=storage or Storage(),
            background=background,
            persist=persist,
        )

    # -- out ------------------------------------------------------------------------------
    def _seal(self, target: str, message: Message, expires: float | None) -> Envelope:
        return Envelope.seal(self.agent.identity, target, message, next(self._nonce), expires=expires, sign=self.sign)

    def _send(self, target: str, message: Message) -> None:
        replying = self._replying
        if replying is not None and replying[1] is not None and target == replying[0] and type(message) not in replying[1]:
            allowed = ", ".join(sorted(t.__name__ for t in replying[1])) or "nothing"
            raise UndeclaredReply(f"{self.agent.name} may reply {allowed}, not {type(message).__name__}")
        ttl = self.ttl
        expires = None if ttl is None else self._clock() + ttl
        if self.sign:
            self._transport(self._seal(target, message, expires))
            self._count_sent(target)
            return
        # the unsigned fast path of a trusted single-process simulation: the same envelope, built inline
        kind = type(message)
        self._transport(
            Envelope(
                self._address,
                target,
                _DIGESTS.get(kind) or kind.schema_digest(),
                message.__pydantic_serializer__.to_json(message).decode(),
                next(self._nonce),
                message.deal_id,
                expires,
                "",
                message,
            )
        )
        self._count_sent(target)

    def _count_sent(self, target: str) -> None:
        """Counted once the transport took the envelope (an unknown target raises first)."""
        sent = self.sent_to
        sent[target] = sent.get(target, 0) + 1

    def _schedule(self, delay: float, message: Message) -> None:
        delay = max(0.0, delay)
        envelope = self._seal(self.agent.address, message, None)
        self.timers[envelope.nonce] = (self._clock() + delay, envelope)  # kept until handled, so snapshots carry it
        self._timer(delay, envelope)

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Run on_start, then arm the interval handlers. Unlike a handler, a failed start
        raises: an agent that could not publish its offers or open its account must not run
        half set up."""
        self.agent.on_start(self.ctx)
        for index, (period, _) in enumerate(self._intervals):
            self._schedule(period, IntervalTick(index=index))

    def stop(self) -> None:
        self._guard("on_stop", lambda: self.agent.on_stop(self.ctx))
        if self._loop is not None:
            self._loop.close()
            self._loop = None

    # -- in -------------------------------------------------------------------------------
    def deliver(self, envelope: Envelope, now: float | None = None, remote: bool = False, authenticated: bool = False) -> None:
        """Admit ``envelope`` through the inbox and run its handler (``now``: the runtime's
        time, when the caller already has it; ``remote``: it came from another process, so
        its header is validated too; ``authenticated``: its sender was already proven, by a
        batch signature under a key the sender delegated to)."""
        sender = envelope.sender
        timer = False
        if sender == self._address:  # one of our timers only if it is the very envelope we armed
            armed = self.timers.get(envelope.nonce)
            if armed is not None and armed[1] is envelope:
                del self.timers[envelope.nonce]
                timer = True
        try:
            if remote:
                envelope.check()
            message = self.inbox.admit(envelope, self._clock() if now is None else now, authenticated, timer)
        except Rejected as exc:
            self.reject(envelope, exc)
            return
        self.handled += 1
        if not timer:
            admitted = self.admitted_from
            admitted[sender] = admitted.get(sender, 0) + 1
        if type(message) is IntervalTick:
            self._tick(message.index)
            return
        route = self._routes.get(type(message))
        if route is None:  # only a type listed in the inbox gets here; kept for a clear error
            raise UnknownMessage(f"{self.agent.name} has no handler for {type(message).__name__}")
        handler, replies = route
        if replies is not None:
            self._replying = (envelope.sender, replies)
        try:
            result = handler(self.agent, self.ctx, envelope.sender, message)
            if result is not None and inspect.iscoroutine(result):
                self._drive(result)
        except Exception as exc:  # noqa: BLE001 - one bad message must not stop the agent
            self._failed(f"message from {envelope.sender}", exc)
        finally:
            if replies is not None:
                self._replying = None

    def reject(self, envelope: Envelope, exc: Rejected) -> None:
        """Count, record and log an envelope refused before any handler saw it."""
        name = type(exc).__name__
        self.inbox.rejected[name] += 1
        tally = self.replays_from if name == "ReplayedMessage" else self.refused_from
        who = envelope.sender if isinstance(envelope.sender, str) else repr(envelope.sender)  # a malformed header too
        tally[who] = tally.get(who, 0) + 1
        self.errors.append(f"rejected {name}: {exc}")
        self.log.warning("%s refused an envelope from %s: %s: %s", self.agent.name, envelope.sender, name, exc)

    def _tick(self, index: int) -> None:
        if not 0 <= index < len(self._intervals):  # armed before a restore into a class with fewer intervals
            self.errors.append(f"interval tick {index} dropped: {self.agent.name} has {len(self._intervals)} intervals")
            self.log.warning("%s dropped interval tick %d: it has %d intervals", self.agent.name, index, len(self._intervals))
            return
        period, fn = self._intervals[index]
        self._schedule(period, IntervalTick(index=index))  # re-arm first: a failing tick still ticks
        self._guard(f"interval {getattr(fn, '__name__', index)}", lambda: self._maybe_drive(fn(self.ctx)))

    def _maybe_drive(self, result: Any) -> None:
        if inspect.iscoroutine(result):
            self._drive(result)

    def _drive(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run an async handler to completion on this host's own loop (a sharded host runs
        many at once on its actor's loop instead)."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(coro)

    def _guard(self, what: str, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - one bad message must not stop the agent
            self._failed(what, exc)

    def _failed(self, what: str, exc: Exception) -> None:
        self.errors.append(f"{what}: {type(exc).__name__}: {exc}")
        self.log.warning("%s failed handling %s: %s", self.agent.name, what, exc, exc_info=True)

    # -- snapshots ------------------------------------------------------------------------
    def refs(self) -> dict[str, Any]:
        """The live objects an agent's state may point at, written into snapshots by name."""
        ctx = self.ctx
        return {
            "context": ctx,
            "wallet": ctx.wallet,
            "ledger": ctx.wallet.ledger,
            "registry": ctx.registry,
            "store": ctx.store,
            "executor": ctx.executor,
            "background": ctx.background,
        }

    def snapshot(self) -> bytes:
        """The agent's state, storage, replay windows, next nonce and armed timers (as the
        time each has left, whatever clock the next host keeps); never its key."""
        nonce = next(self._nonce)
        self._nonce = itertools.count(nonce)
        inbox = {"high": dict(self.inbox._high), "holes": dict(self.inbox._holes)}
        now = self._clock()
        timers = [(max(0.0, due - now), env) for due, env in self.timers.values()]
        state = {
            "agent": self.agent,
            "storage": self.ctx.storage.snapshot(),
            "inbox": inbox,
            "nonce": nonce,
            "timers": timers,
            "handled": self.handled,
            "traffic": self.traffic(),
        }
        body = snapshots.dump(state, self.refs())
        header = {"version": snapshots.SNAPSHOT_VERSION, "address": self.agent.address, "name": self.agent.name, "class": type(self.agent)}
        return pickle.dumps({**header, "body": body}, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def skeleton(data: bytes, identity: Any) -> tuple[Agent, bytes]:
        """An empty agent of the snapshot's class, named and keyed, to host before ``resume``."""
        try:
            header = pickle.loads(data)
        except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
            raise snapshots.SnapshotError(f"unreadable snapshot: {type(exc).__name__}: {exc}") from None
        if header.get("version") != snapshots.SNAPSHOT_VERSION:
            raise snapshots.SnapshotError(f"snapshot version {header.get('version')!r} is not {snapshots.SNAPSHOT_VERSION}")
        if header["address"] != identity.address:
            raise snapshots.SnapshotError(f"the snapshot is of {header['address']}, the key given is {identity.address}")
        agent = header["class"].__new__(header["class"])
        Agent.__init__(agent, header["name"], identity)
        return agent, header["body"]

    def resume(self, body: bytes) -> None:
        """Load a snapshot body into this host (made around ``skeleton``'s agent) and re-arm
        the timers it had armed (its intervals among them)."""
        identity = self.agent.identity

        def key_of(address: str) -> Any:
            if address != identity.address:
                raise snapshots.SnapshotError(f"the snapshot holds the identity of {address}, not this agent's")
            return identity

        state = snapshots.load(body, key_of, self.refs())
        self.agent = state["agent"]
        self._intervals = self.agent.intervals()
        self.ctx.storage = Storage.restore(state["storage"])
        self.inbox._high, self.inbox._holes = dict(state["inbox"]["high"]), dict(state["inbox"]["holes"])
        self._nonce = itertools.count(state["nonce"])
        self.handled = state["handled"]
        traffic = state.get("traffic") or {}
        self.sent_to, self.admitted_from = dict(traffic.get("sent", {})), dict(traffic.get("admitted", {}))
        self.replays_from, self.refused_from = dict(traffic.get("replays", {})), dict(traffic.get("refused", {}))
        now = self._clock()
        for left, envelope in state["timers"]:
            self.timers[envelope.nonce] = (now + left, envelope)
            self._timer(left, envelope)

    def traffic(self) -> dict[str, dict[str, int]]:
        """This agent's side of the traffic ledger: sent (by target), admitted, replays and
        refused (by sender)."""
        return {"sent": dict(self.sent_to), "admitted": dict(self.admitted_from), "replays": dict(self.replays_from), "refused": dict(self.refused_from)}

    def query(self, method: str, *args: Any) -> Any:
        """Call a public method of the agent (state for drivers, tests and reports)."""
        if method.startswith("_"):
            raise AttributeError(f"{method} is private")
        value = getattr(self.agent, method)
        return value(*args) if callable(value) else value
