"""The market a gateway fronts: what the HTTP app may read and ask of it.

:class:`MarketFront` is the boundary: the ledger and registry (read, and the caller's own signed
writes relayed), the gateway agent (``ask``: relay a call, read a job), and a tape of recent
trades and deals that the market data endpoints and the explorer's live chart read.

:class:`JoinedMarket` joins a market already running on Ray (``agora deploy``, then
``agora gateway --join NAME``): the gateway agent becomes a guest of that deployment.
A market the gateway hosts itself for trying it out (``agora gateway --scenario NAME``) is
:class:`agora.simulations.hosted.HostedMarket`: it runs a scenario, so it lives with the
scenarios. The ledger is thread-safe on its own, so the app reads it and relays callers' writes
to it without the market's lock: a chain node that is slow to mine holds up the write waiting on
it, not the market (the agents' own writes, made inside the runtime, are bounded by the ledger's
``write_timeout``).
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from agora.agents import Identity
from agora.agents.registry import Registry
from agora.agents.roles.exchange import read_trades
from agora.chain import Ledger
from agora.gateway.errors import GatewayError
from agora.gateway.relay import GatewayAgent

__all__ = ["JoinedMarket", "MarketFront", "PumpedFront"]

T = TypeVar("T")
log = logging.getLogger(__name__)


class MarketFront(ABC):
    """What the gateway app needs of a market, whatever hosts it."""

    ledger: Ledger
    registry: Registry
    gateway: str  # the gateway agent's address
    kind: str  # "hosted" (in this process) or "ray"
    ledger_kind: str  # "memory", "embedded" or "rpc"

    @abstractmethod
    def locked(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` with the market held still (reads of the registry see one state). Never
        wait on the chain node inside ``fn``: every other request that reads the market waits too."""

    @abstractmethod
    def ask(self, method: str, *args: Any) -> Any:
        """Call a public method of the gateway agent."""

    @abstractmethod
    def tape(self, since: int = 0, limit: int = 200, market: str | None = None) -> tuple[int, list[dict[str, Any]]]:
        """Trades after sequence number ``since`` (newest last), and the latest sequence number."""

    @abstractmethod
    def deals(self, limit: int = 20) -> list[dict[str, Any]]:
        """Recent ended deals with their journey (bid, contract, escrow, run, verify, settle)."""

    def markets(self) -> list[str]:
        return []

    def agent(self, address: str) -> dict[str, str] | None:
        """Name and role of an agent of this market (those it listed in discovery, at least)."""
        return self.registry.agents().get(address)

    def close(self) -> None:  # noqa: B027 - a market holding nothing has nothing to let go of
        """Stop the market (a hosted one) or let go of it (a joined one)."""


class PumpedFront(MarketFront):
    """What both markets share: a pump thread that reads the exchanges' new trades into a tape
    (by its own cursor on each exchange's tape: any number of gateways, and the run's recorder,
    each see every trade) and the buyers' ended deals with their journeys, every ``tick``
    seconds, under one lock."""

    exchanges: dict[str, str]  # market -> exchange address
    buyers: list[str]
    names: dict[str, str]  # address -> agent name
    _lock: threading.RLock  # made by the subclass before it starts the pump: the market held still

    def _start_pump(self, tick: float, tape_size: int) -> None:
        self.tick = tick
        self._tape: deque[dict[str, Any]] = deque(maxlen=tape_size)
        self._seq = 0
        self._cursors: dict[str, int] = {}  # market -> the last trade read off its exchange
        self._deals: deque[dict[str, Any]] = deque(maxlen=500)
        self._seen_deals: set[str] = set()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._pump = threading.Thread(target=self._run, name="agora-gateway-market", daemon=True)
        self._pump.start()

    @abstractmethod
    def _query(self, address: str, method: str, *args: Any) -> Any:
        """Call a public method of one of the market's agents."""

    def _advance(self) -> None:
        """Move the market on before each read (a hosted local runtime runs up to the wall clock)."""

    def tape(self, since: int = 0, limit: int = 200, market: str | None = None) -> tuple[int, list[dict[str, Any]]]:
        with self._lock:
            rows = [t for t in self._tape if t["seq"] > since and (market is None or t["market"] == market)]
            return self._seq, rows[-limit:]

    def deals(self, limit: int = 20) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._deals)[-limit:][::-1]

    def markets(self) -> list[str]:
        return list(self.exchanges)

    def _stop_pump(self) -> None:
        self._stop.set()
        self._wake.set()
        self._pump.join(timeout=10)

    def _run(self) -> None:
        last_deals = 0.0
        while not self._stop.is_set():
            self._wake.wait(self.tick)
            self._wake.clear()
            try:
                with self._lock:
                    self._advance()
                    self._drain()
                    if time.monotonic() - last_deals > 1.0:
                        self._collect_deals()
                        last_deals = time.monotonic()
            except Exception:  # noqa: BLE001 - the market must keep running behind the gateway
                log.exception("the gateway's market pump hit an error; it goes on")
                self._stop.wait(self.tick)

    def _drain(self) -> None:
        for market, address in self.exchanges.items():
            if market not in self._cursors:  # a market already running: its latest trades, as many as the tape shows
                self._cursors[market] = max(0, self._query(address, "trades", 0, 0)[0] - (self._tape.maxlen or 0))
            self._cursors[market], rows, missed = read_trades(self._query, address, self._cursors[market])
            if missed:
                log.warning("market %s: %d trades left its exchange's tape before the gateway read them", market, missed)
            for _, rnd, t, buyer, seller, price, qty, tx in rows:
                self._seq += 1
                self._tape.append(
                    {
                        "seq": self._seq,
                        "market": market,
                        "round": rnd,
                        "t": float(t),
                        "buyer": buyer,
                        "seller": seller,
                        "price": int(price),
                        "qty": int(qty),
                        "tx": tx,
                    }
                )

    def _collect_deals(self) -> None:
        for buyer in self.buyers:
            for deal_id, deal in self._query(buyer, "deals").items():
                if not deal.done or deal_id in self._seen_deals:
                    continue
                self._seen_deals.add(deal_id)
                record = {
                    "buyer": buyer,
                    "buyer_name": self.names.get(buyer, ""),
                    **deal.model_dump(mode="json"),
                    "history": self._query(buyer, "history", deal_id),
                }
                record.pop("result", None)
                self._deals.append(record)


class JoinedMarket(PumpedFront):
    """A market already running on Ray, deployed with ``agora deploy --name NAME`` on a local
    Ray or a cluster this process has joined: the gateway agent joins it as a guest
    (agora.agents.ray.deployment.Guest: a shard actor of its own, admitted by the deployment's shards,
    gone when the gateway stops) and reads the deployment's ledger and registry actors. The
    market's agents are the deployment's; stopping the gateway leaves them running."""

    kind = "ray"

    def __init__(self, name: str, *, identity: Identity | None = None, tick: float = 0.5, tape_size: int = 5000) -> None:
        from agora.agents.ray import RemoteLedger, RemoteProxy, ray_is_running
        from agora.agents.ray.deployment import Guest

        if not ray_is_running():
            raise GatewayError("joining a deployment needs Ray joined: the entry point connects (agora gateway --join NAME --address ADDR)")
        self.guest = Guest(name, [GatewayAgent("gateway", identity or Identity.generate())])
        self.gateway = self.guest.addresses[0]
        self.ledger = RemoteLedger(self.guest.ledger_actor)
        self.registry = RemoteProxy(self.guest.registry_actor)  # type: ignore[assignment]  # the actor client stands in for a Registry
        self.ledger_kind = "memory" if self.guest.manifest["ledger"] == "memory" else "rpc"
        rows = self.guest.rows
        self.names = {row["address"]: row["name"] for row in rows}
        self.classes = {row["address"]: row["class"] for row in rows}
        self.exchanges = {row["name"]: row["address"] for row in rows if row["class"] == "Exchange"}
        self.buyers = [row["address"] for row in rows if row["class"] == "Buyer"]
        self._lock = threading.RLock()
        self._start_pump(tick, tape_size)

    def locked(self, fn: Callable[[], T]) -> T:
        return fn()  # the ledger service runs whole-ledger reads alone

    def ask(self, method: str, *args: Any) -> Any:
        return self.guest.query(self.gateway, method, *args)

    def agent(self, address: str) -> dict[str, str] | None:
        listed = super().agent(address)
        if address in self.names:
            return {"name": self.names[address], "role": (listed or {}).get("role") or self.classes[address].lower()}
        return listed

    def close(self) -> None:
        self._stop_pump()
        self.guest.leave()

    def _query(self, address: str, method: str, *args: Any) -> Any:
        return self.guest.query(address, method, *args)
