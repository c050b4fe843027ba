"""Protocols: a set of message types and their handlers, declared in one file, that any agent
can include — as Fetch.ai's uAgents protocols are::

    ping = Protocol("ping", version="1")

    @ping.on_message(Ping, replies={Pong})
    def answer(ctx: Context, sender: str, msg: Ping) -> None:
        ctx.send(sender, Pong(deal_id=msg.deal_id))

    class Echo(Agent):
        protocols = (ping,)

A protocol's digest is the sha256 of its name, version, and every message digest with the
digests of its declared replies, so two agents can tell that they speak the same protocol before
they trade (the registry publishes the digests with each service). ``replies`` is enforced: a
handler that sends its sender a type it did not declare raises ``UndeclaredReply``. Handlers may
be ``async def``; the runtime drives them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from agora.agents.errors import RuntimeFailure
from agora.agents.messages import Message


@dataclass(frozen=True)
class Route:
    """How one message type is handled: the callable ``(ctx, sender, msg)`` and its replies."""

    handler: Callable[..., Any]
    replies: frozenset[type[Message]] | None = None


def replies_of(replies: Iterable[type[Message]] | None) -> frozenset[type[Message]] | None:
    if replies is None:
        return None
    found = frozenset(replies)
    for r in found:
        if not (isinstance(r, type) and issubclass(r, Message)):
            raise RuntimeFailure(f"replies must be Message types, got {r!r}")
    return found


def digest_of(name: str, version: str, routes: dict[type[Message], frozenset[type[Message]] | None]) -> str:
    """sha256 over the protocol's name, version, messages and declared replies."""
    spec = {
        "name": name,
        "version": version,
        "messages": sorted([t.schema_digest(), sorted(r.schema_digest() for r in (replies or ()))] for t, replies in routes.items()),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class Protocol:
    def __init__(self, name: str, version: str = "1") -> None:
        if not name:
            raise RuntimeFailure("a protocol needs a name")
        self.name, self.version = name, version
        self.routes: dict[type[Message], Route] = {}
        self.intervals: list[tuple[float, Callable[..., Any]]] = []

    def on_message(self, message_type: type[Message], replies: Iterable[type[Message]] | None = None) -> Callable:
        """Declare ``fn(ctx, sender, msg)`` as this protocol's handler for ``message_type``."""
        if not (isinstance(message_type, type) and issubclass(message_type, Message)):
            raise RuntimeFailure(f"on_message needs a Message type, got {message_type!r}")
        if message_type in self.routes:
            raise RuntimeFailure(f"protocol {self.name} already handles {message_type.__name__}")
        declared = replies_of(replies)

        def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.routes[message_type] = Route(fn, declared)
            return fn

        return mark

    def on_interval(self, period: float) -> Callable:
        """Declare ``fn(ctx)`` to run every ``period`` seconds of the runtime's clock."""
        if not period > 0:
            raise RuntimeFailure(f"an interval must be positive, got {period!r}")

        def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.intervals.append((float(period), fn))
            return fn

        return mark

    @property
    def digest(self) -> str:
        return digest_of(self.name, self.version, {t: r.replies for t, r in self.routes.items()})

    def message_types(self) -> dict[str, type[Message]]:
        return {t.schema_digest(): t for t in self.routes}

    def __repr__(self) -> str:
        return f"Protocol({self.name} v{self.version}, {len(self.routes)} messages, {self.digest[:12]}…)"
