"""The agent model: a plain class with typed message handlers and a context to act through.

Agent code never imports Ray and never touches keys: a runtime (in-process or Ray) hosts the
agent, builds its :class:`Context` and delivers messages to the handler declared for their type::

    class Echo(Agent):
        @on_message(Ping, replies={Pong})
        def ping(self, ctx: Context, sender: str, msg: Ping) -> None:
            ctx.send(sender, Pong(deal_id=msg.deal_id))

        @on_interval(30.0)
        def heartbeat(self, ctx: Context) -> None:
            ctx.registry.heartbeat(ctx.address, ctx.now())

Handlers may also come from shared :class:`~agora.agents.protocol.Protocol` objects listed in the
class's ``protocols``. The methods an agent declares itself form its own protocol, named after
the class. ``on_start`` and ``on_stop`` are the startup and shutdown hooks.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from agora.agents.errors import RuntimeFailure, UnknownMessage
from agora.agents.identity import Identity
from agora.agents.messages import Message
from agora.agents.protocol import Protocol, digest_of, replies_of
from agora.agents.registry_access import RegistryFace
from agora.agents.storage import Storage
from agora.agents.wallet import Wallet
from agora.chain.ledger import LedgerReader

Handler = Callable[..., Any]


def on_message(message_type: type[Message], replies: Iterable[type[Message]] | None = None) -> Callable[[Handler], Handler]:
    """Declare a method as the handler for ``message_type`` (and, optionally, the only types it
    may send back to the sender)."""
    if not (isinstance(message_type, type) and issubclass(message_type, Message)):
        raise RuntimeFailure(f"on_message needs a Message type, got {message_type!r}")
    declared = replies_of(replies)

    def mark(fn: Handler) -> Handler:
        fn._agora_handles = (message_type, declared)  # type: ignore[attr-defined]  # a mark on the function, read by __init_subclass__
        return fn

    return mark


def on_interval(period: float) -> Callable[[Handler], Handler]:
    """Declare a method ``fn(self, ctx)`` to run every ``period`` seconds of the runtime clock."""
    if not period > 0:
        raise RuntimeFailure(f"an interval must be positive, got {period!r}")

    def mark(fn: Handler) -> Handler:
        fn._agora_interval = float(period)  # type: ignore[attr-defined]  # a mark on the function, read by __init_subclass__
        return fn

    return mark


@dataclass
class Context:
    """What a handler may use. Built by the runtime; the same fields in every runtime."""

    address: str
    name: str
    wallet: Wallet
    registry: RegistryFace  # the agent's face of the registry: reads, and writes in its own name
    send: Callable[[str, Message], None]
    schedule: Callable[[float, Message], None]  # deliver a message to this agent after a delay
    now: Callable[[], float]
    rng: random.Random
    store: Any = None  # tasks.ContentStore where the runtime has one
    executor: Any = None  # tasks.Executor for providers
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("agora.agent"))
    storage: Storage = field(default_factory=Storage)
    background: Callable[[Callable[[], None]], object] | None = None  # where the runtime runs off-mailbox work
    persist: Callable[[], None] | None = None  # a durable runtime's journal write of this agent, now

    def checkpoint(self) -> None:
        """Make this agent's state, as it is now in the middle of a handler, durable before
        going on: call it before an effect outside the agents (a ledger write) whose repeat
        after a crash would matter. After a crash the agent comes back as it was here (the
        message being handled counts as handled), so it can find out whether the effect landed
        instead of doing it again. A no-op where nothing is journaled (one process, no crash)."""
        if self.persist is not None:
            self.persist()

    def run_off_mailbox(self, work: Callable[[], Any], done: Callable[[Any, Exception | None], Message]) -> None:
        """Run ``work`` (a job, a slow call) without holding this agent's mailbox, then handle
        ``done(result, error)`` as a message to itself. A sharded runtime runs it on a thread, so
        the agent keeps answering while it works; a single-process simulation runs it at once,
        which keeps the event order, and so the seed's replay, exact."""

        def finish() -> None:
            try:
                message = done(work(), None)
            except Exception as exc:  # noqa: BLE001 - the agent decides what a failure means
                message = done(None, exc)
            self.schedule(0.0, message)

        (self.background or (lambda thunk: thunk()))(finish)

    @property
    def ledger(self) -> LedgerReader:
        """Read-only: balances, escrows, ledger time. Pay and lock through ``wallet``."""
        return self.wallet.ledger

    @property
    def logger(self) -> logging.Logger:
        return self.log

    def broadcast(self, message: Message, to: Iterable[str] | None = None, capability: str | None = None) -> int:
        """Send ``message`` to every address in ``to``, or to every agent whose live service
        offers ``capability``; returns how many were sent (never to oneself)."""
        if to is None:
            if capability is None:
                raise RuntimeFailure("broadcast needs addresses (to=) or a capability")
            to = [s.address for s in self.registry.search(capability, now=self.now())]
        sent = 0
        for target in dict.fromkeys(to):
            if target != self.address:
                self.send(target, message)
                sent += 1
        return sent


_TABLES: dict[type, dict[type[Message], tuple[Callable[..., Any], frozenset[type[Message]] | None]]] = {}


def _unbound(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A protocol's ``fn(ctx, sender, msg)`` in the dispatch table's ``(agent, ctx, sender, msg)`` form."""
    return lambda agent, ctx, sender, msg: fn(ctx, sender, msg)


class Agent:
    """Base class: subclasses declare handlers with :func:`on_message` (or list shared
    ``protocols``) and may override :meth:`on_start` and :meth:`on_stop`. Public attributes are
    the agent's observable state."""

    role: ClassVar[str] = "agent"
    protocols: ClassVar[tuple[Protocol, ...]] = ()
    _handlers: ClassVar[dict[type[Message], tuple[str, frozenset[type[Message]] | None]]] = {}
    _intervals: ClassVar[dict[str, float]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers: dict[type[Message], tuple[str, frozenset[type[Message]] | None]] = {}
        intervals: dict[str, float] = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if hasattr(value, "_agora_handles"):
                    message_type, replies = value._agora_handles
                    handlers[message_type] = (name, replies)
                if hasattr(value, "_agora_interval"):
                    intervals[name] = value._agora_interval
        cls._handlers, cls._intervals = handlers, intervals

    def __init__(self, name: str, identity: Identity) -> None:
        self.name = name
        self.identity = identity

    @property
    def address(self) -> str:
        return self.identity.address

    @classmethod
    def dispatch_table(cls) -> dict[type[Message], tuple[Callable[..., Any], frozenset[type[Message]] | None]]:
        """Message type -> (``fn(agent, ctx, sender, msg)``, declared replies), built once per
        class and shared by every agent of it: a population of thousands keeps one table. Its
        own methods first, then its protocols (a type handled twice is an error: which handler
        would run must never be a guess)."""
        table = _TABLES.get(cls)
        if table is None:
            table = {t: (getattr(cls, name), replies) for t, (name, replies) in cls._handlers.items()}
            for protocol in cls.protocols:
                for t, route in protocol.routes.items():
                    if t in table:
                        raise RuntimeFailure(f"{cls.__name__} handles {t.__name__} twice (protocol {protocol.name})")
                    table[t] = (_unbound(route.handler), route.replies)
            _TABLES[cls] = table
        return table

    def intervals(self) -> list[tuple[float, Callable[[Context], Any]]]:
        found = [(period, getattr(self, name)) for name, period in self._intervals.items()]
        return found + [iv for p in self.protocols for iv in p.intervals]

    @classmethod
    def message_types(cls) -> dict[str, type[Message]]:
        """Schema digest -> message type, for every message this agent handles."""
        return {t.schema_digest(): t for t in cls.dispatch_table()}

    @classmethod
    def protocol_digests(cls) -> dict[str, str]:
        """Protocol name -> digest: the agent's own handlers (named after its class) and each
        included protocol. Published with its services so peers can check compatibility."""
        digests = {p.name: p.digest for p in cls.protocols}
        if cls._handlers:
            digests[cls.__name__] = digest_of(cls.__name__, "1", {t: r for t, (_, r) in cls._handlers.items()})
        return digests

    def on_start(self, ctx: Context) -> None:
        """Called once when the runtime starts the agent (register offers, open accounts)."""

    def on_stop(self, ctx: Context) -> None:
        """Called once when the runtime stops the agent (withdraw services, flush state)."""

    def open_contracts(self) -> int:
        """Contracts this agent is party to that are not yet settled or refunded (for status)."""
        return 0

    def handle(self, ctx: Context, sender: str, message: Message) -> Any:
        """Run this agent's handler for ``message`` directly (a host goes through its inbox first)."""
        route = self.dispatch_table().get(type(message))
        if route is None:
            raise UnknownMessage(f"{self.name} has no handler for {type(message).__name__}")
        return route[0](self, ctx, sender, message)
