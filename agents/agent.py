"""The agent model: a plain class with typed message handlers and a context to act through.

Agent code never imports Ray and never touches keys: a runtime (in-process or Ray) hosts the
agent, builds its :class:`Context` and delivers messages to the handler declared for their type::

    class Echo(Agent):
        @on_message(Ping)
        def ping(self, ctx: Context, sender: str, msg: Ping) -> None:
            ctx.send(sender, Pong(deal_id=msg.deal_id))
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, TypeVar

from agents.errors import UnknownMessage
from agents.identity import Identity
from agents.messages import Message
from agents.registry import Registry
from agents.wallet import Wallet
from chain.ledger import LedgerReader

M = TypeVar("M", bound=Message)
Handler = Callable[[Any, "Context", str, Any], None]


def on_message(message_type: type[Message]) -> Callable[[Handler], Handler]:
    """Declare a method as the handler for ``message_type``."""

    def mark(fn: Handler) -> Handler:
        fn._agora_handles = message_type  # type: ignore[attr-defined]
        return fn

    return mark


@dataclass
class Context:
    """What a handler may use. Built by the runtime; the same fields in every runtime."""

    address: str
    name: str
    wallet: Wallet
    registry: Registry
    send: Callable[[str, Message], None]
    schedule: Callable[[float, Message], None]  # deliver a message to this agent after a delay
    now: Callable[[], float]
    rng: random.Random
    store: Any = None  # tasks.ContentStore where the runtime has one
    executor: Any = None  # tasks.Executor for providers
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("agora.agent"))

    @property
    def ledger(self) -> LedgerReader:
        """Read-only: balances, escrows, ledger time. Pay and lock through ``wallet``."""
        return self.wallet.ledger


class Agent:
    """Base class: subclasses declare handlers with :func:`on_message` and may override
    :meth:`on_start`. Public attributes are the agent's observable state."""

    role: ClassVar[str] = "agent"
    _handlers: ClassVar[dict[type[Message], str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers: dict[type[Message], str] = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if hasattr(value, "_agora_handles"):
                    handlers[value._agora_handles] = name
        cls._handlers = handlers

    def __init__(self, name: str, identity: Identity) -> None:
        self.name = name
        self.identity = identity

    @property
    def address(self) -> str:
        return self.identity.address

    @classmethod
    def message_types(cls) -> dict[str, type[Message]]:
        """Schema digest -> message type, for every message this agent handles."""
        return {t.schema_digest(): t for t in cls._handlers}

    def on_start(self, ctx: Context) -> None:
        """Called once when the runtime starts the agent (register offers, open accounts)."""

    def handle(self, ctx: Context, sender: str, message: Message) -> None:
        try:
            name = self._handlers[type(message)]
        except KeyError:
            raise UnknownMessage(f"{self.name} has no handler for {type(message).__name__}") from None
        getattr(self, name)(ctx, sender, message)
