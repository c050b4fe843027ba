"""AgentHost: what every runtime does for one agent, written once.

It builds the agent's :class:`~agents.agent.Context`, seals outgoing messages in signed
envelopes, opens and verifies incoming ones, and dispatches them to the handlers. A handler
that raises is logged and recorded; the agent keeps running. Runtimes differ only in how an
envelope travels (``transport``), how a timer fires (``timer``) and what clock they keep.
"""

from __future__ import annotations

import itertools
import logging
import random
from typing import Any, Callable

from agents.agent import Agent, Context
from agents.messages import Envelope, Message
from agents.registry import Registry
from agents.wallet import Wallet
from chain import Ledger

Transport = Callable[[Envelope], None]
Timer = Callable[[float, Envelope], None]


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
    ) -> None:
        self.agent = agent
        self.sign = sign
        self._transport = transport
        self._timer = timer
        self._nonce = itertools.count()
        self._types = agent.message_types()
        self.errors: list[str] = []
        self.log = logging.getLogger(f"agora.agent.{agent.name}")
        self.ctx = Context(
            address=agent.address,
            name=agent.name,
            wallet=Wallet(agent.identity, ledger),
            registry=registry,
            send=self._send,
            schedule=self._schedule,
            now=clock,
            rng=random.Random(f"{seed}:{agent.name}"),
            store=store,
            executor=executor,
            log=self.log,
        )

    def _seal(self, target: str, message: Message) -> Envelope:
        return Envelope.seal(self.agent.identity, target, message, next(self._nonce), sign=self.sign)

    def _send(self, target: str, message: Message) -> None:
        self._transport(self._seal(target, message))

    def _schedule(self, delay: float, message: Message) -> None:
        self._timer(max(0.0, delay), self._seal(self.agent.address, message))

    def start(self) -> None:
        """Run on_start. Unlike a handler, a failed start raises: an agent that could not
        publish its offers or open its account must not run half set up."""
        self.agent.on_start(self.ctx)

    def deliver(self, envelope: Envelope) -> None:
        def run() -> None:
            message = envelope.open(self._types, verify=self.sign)
            self.agent.handle(self.ctx, envelope.sender, message)

        self._guard(f"message from {envelope.sender}", run)

    def _guard(self, what: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - one bad message must not stop the agent
            self.errors.append(f"{what}: {type(exc).__name__}: {exc}")
            self.log.warning("%s failed handling %s: %s", self.agent.name, what, exc, exc_info=True)

    def query(self, method: str, *args: Any) -> Any:
        """Call a public method of the agent (state for drivers, tests and reports)."""
        if method.startswith("_"):
            raise AttributeError(f"{method} is private")
        value = getattr(self.agent, method)
        return value(*args) if callable(value) else value
