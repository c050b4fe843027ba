"""The gateway's public reads: market state anyone may read, no signature needed (rate-limited
per client). Ledger reads go to the thread-safe ledger directly; registry reads and the market's
tape take the market's lock only for the read itself, after any read of the chain node."""

from __future__ import annotations

import asyncio
import json
import secrets
import typing
from collections.abc import Callable
from typing import Any, Literal

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import StreamingResponse

from agora.agents.billing import escrow_bill, escrow_terms
from agora.chain.types import check_address, check_id, owned_id
from agora.gateway.errors import NotFound
from agora.gateway.market import MarketFront
from agora.gateway.relay import model_call_service
from agora.gateway.schemas import ADDRESS_PATTERN, ID_PATTERN, Account, ChainInfo, EscrowQuote, Price, Profile, Service, Trade, TradesPage
from agora.tasks.jobs import MODEL_KINDS

API = "/v1"


def add_reads(app: FastAPI, market: MarketFront, anyone: Callable[[Request], None], chain_id: int, domain: dict[str, Any]) -> None:
    """The public read endpoints of ``market`` (``anyone``: the per-client rate limit)."""

    # -- chain, services, market data, deals -------------------------------------------------------------------------
    @app.get(f"{API}/chain", response_model=ChainInfo, dependencies=[Depends(anyone)], summary="The ledger and gateway: chain id, signing domains, time")
    def chain() -> ChainInfo:
        led = market.ledger  # thread-safe: no market lock, so a busy market never holds this read up
        return ChainInfo(
            chain_id=chain_id,
            ledger=market.ledger_kind,
            symbol=led.symbol,
            decimals=led.decimals,
            gateway=market.gateway,
            now=int(led.now()),
            domains={**led.domains(), "request": domain},
            markets=market.markets(),
        )

    @app.get(
        f"{API}/services",
        response_model=list[Service],
        dependencies=[Depends(anyone)],
        summary="Models, datasets, compute and served models, with prices and reputation",
    )
    def services(
        kind: Literal["model", "dataset", "compute", "model-call"] | None = None,
        name: str | None = Query(default=None, max_length=200),
        max_price: int | None = Query(default=None, ge=0, le=2**256 - 1),
        min_reputation: float | None = Query(default=None, ge=0, le=1),
    ) -> list[Service]:
        now = float(market.ledger.now())  # from the node, before the market's lock
        found = market.locked(lambda: _services(market, kind, now))
        return [
            s
            for s in found
            if (name is None or s.name == name or s.terms.get("name") == name)
            and (max_price is None or s.price <= max_price)
            and (min_reputation is None or s.reputation >= min_reputation)
        ]

    @app.get(f"{API}/market/trades", response_model=TradesPage, dependencies=[Depends(anyone)], summary="Recent settled trades, newest last")
    def trades(
        since: int = Query(default=0, ge=0),
        limit: int = Query(default=100, ge=1, le=1000),
        market_name: str | None = Query(default=None, alias="market", max_length=100),
    ) -> TradesPage:
        last, rows = market.tape(since=since, limit=limit, market=market_name)
        return TradesPage(last_seq=last, trades=[Trade(**r) for r in rows])

    @app.get(
        f"{API}/market/prices",
        response_model=list[Price],
        dependencies=[Depends(anyone)],
        summary="Per market: last, VWAP, range and volume of the recent trades",
    )
    def prices() -> list[Price]:
        _, rows = market.tape(limit=5000)
        return [_price(m, [r for r in rows if r["market"] == m]) for m in market.markets()]

    @app.get(
        f"{API}/market/stream",
        dependencies=[Depends(anyone)],
        summary="Server-sent events: each new trade as it settles (event: trade)",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def stream(
        request: Request, since: int = Query(default=0, ge=0), once: bool = Query(default=False, description="send what is new and close")
    ) -> StreamingResponse:
        async def events() -> typing.AsyncIterator[str]:
            last = since
            yield "retry: 2000\n\n"
            while True:
                seq, rows = await asyncio.to_thread(market.tape, last, 500)
                for r in rows:
                    yield f"id: {r['seq']}\nevent: trade\ndata: {json.dumps(r)}\n\n"
                last = max(last, seq)
                if once or await request.is_disconnected():
                    return
                yield ": keep-alive\n\n"
                await asyncio.sleep(0.5)

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.get(f"{API}/deals", dependencies=[Depends(anyone)], summary="Recent ended deals with their journey: call, bids, contract, escrow, run, verify, settle")
    def deals(limit: int = Query(default=20, ge=1, le=200)) -> list[dict[str, Any]]:
        return jsonable_encoder(market.deals(limit))

    @app.get(f"{API}/agents/{{address}}", response_model=Profile, dependencies=[Depends(anyone)], summary="An agent's public profile")
    def profile(address: str = Path(pattern=ADDRESS_PATTERN)) -> Profile:
        who = check_address(address, "address")

        now, balance = float(market.ledger.now()), market.ledger.balance_of(who)  # the node, before the market's lock

        def read() -> Profile:
            known = market.agent(who)
            if known is None:
                raise NotFound(f"no agent {who} in this market", "address")
            rep = _reputation(market)
            mine = [s for s in _services(market, None, now, rep) if s.address == who]
            return Profile(address=who, name=known.get("name", ""), role=known.get("role", ""), reputation=rep.get(who, 0.0), balance=balance, services=mine)

        return market.locked(read)

    @app.get(f"{API}/accounts/{{address}}", response_model=Account, dependencies=[Depends(anyone)], summary="A balance on the ledger")
    def account(address: str = Path(pattern=ADDRESS_PATTERN)) -> Account:
        who = check_address(address, "address")
        return Account(address=who, balance=market.ledger.balance_of(who))

    @app.get(f"{API}/channels/{{channel_id}}", dependencies=[Depends(anyone)], summary="A payment channel's state (deposit left, nonce, expiration)")
    def channel(channel_id: str = Path(pattern=ID_PATTERN)) -> dict[str, Any]:
        cid = check_id(channel_id, "channel_id")
        return market.ledger.channel(cid).model_dump(mode="json")

    @app.get(f"{API}/escrows/{{escrow_id}}", dependencies=[Depends(anyone)], summary="An escrow's state (buyer, payees and shares, amount, deadline, status)")
    def escrow(escrow_id: str = Path(pattern=ID_PATTERN)) -> dict[str, Any]:
        eid = check_id(escrow_id, "escrow_id")
        return market.ledger.escrow(eid).model_dump(mode="json")

    # -- what an escrowed call costs ----------------------------------------------------------------------------
    @app.get(
        f"{API}/services/{{address}}/escrow",
        response_model=EscrowQuote,
        dependencies=[Depends(anyone)],
        summary="Terms of an escrow that pays one call of a served model, and the release that pays it",
    )
    def escrow_quote(
        address: str = Path(pattern=ADDRESS_PATTERN),
        buyer: str = Query(pattern=ADDRESS_PATTERN, description="who opens the escrow: the escrow id is theirs alone (the contract refuses any other opener)"),
        seconds: int = Query(default=600, ge=180, le=86_400, description="how long the escrow runs"),
    ) -> EscrowQuote:
        who, opener = check_address(address, "address"), check_address(buyer, "buyer")
        now = market.ledger.now()  # the node, before the market's lock
        service = market.locked(lambda: model_call_service(market.registry, now, who, "address"))
        escrow_id = owned_id(opener, "gateway-escrow", secrets.token_hex(16))
        terms = escrow_terms(service, escrow_id, int(now) + seconds)
        return EscrowQuote(
            terms=terms.model_dump(mode="json", exclude_none=True),
            release={"op": "release_items", "args": {"escrow_id": escrow_id, "amounts": escrow_bill(service)[1]}},
            dispute={"op": "dispute", "args": {"escrow_id": escrow_id}},
        )


# -- helpers ------------------------------------------------------------------------------------
def _reputation(market: MarketFront) -> dict[str, float]:
    return market.registry.reputation_scores()


def _services(market: MarketFront, kind: str | None, now: float, rep: dict[str, float] | None = None) -> list[Service]:
    """The listed services, read from the registry (under the market's lock); ``now``: ledger
    time, read before it was taken."""
    reg = market.registry
    rep = _reputation(market) if rep is None else rep
    out: list[Service] = []
    if kind in (None, "model"):
        out += [
            Service(
                kind="model",
                address=m.owner,
                name=m.name,
                price=m.price_per_call,
                unit="call (royalty)",
                reputation=rep.get(m.owner, 0.0),
                terms={"model_hash": m.model_hash, "task": m.task, "price_per_1k_tokens": m.price_per_1k_tokens, "license": m.license},
            )
            for t in sorted(MODEL_KINDS)
            for m in reg.find_models(task=t)
        ]
    if kind in (None, "dataset"):
        out += [
            Service(
                kind="dataset",
                address=d.owner,
                name=d.name,
                price=d.price_per_use,
                unit="use",
                reputation=rep.get(d.owner, 0.0),
                terms={"dataset_hash": d.dataset_hash, "items": d.items, "compute_to_data": bool(d.vault)},
            )
            for d in reg.find_datasets()
        ]
    if kind in (None, "compute"):
        names = reg.agents()
        out += [
            Service(
                kind="compute",
                address=c.owner,
                name=names.get(c.owner, {}).get("name", c.owner[:10]),
                price=c.price_per_second,
                unit="second",
                reputation=rep.get(c.owner, 0.0),
                terms={"gpus": c.gpus, "gpu_memory_mb": c.gpu_memory_mb, "cpus": c.cpus},
            )
            for c in reg.find_compute()
        ]
    if kind in (None, "model-call"):
        out += [
            Service(kind="model-call", address=s.address, name=s.name, price=s.price, unit="call", reputation=rep.get(s.address, 0.0), terms=dict(s.terms))
            for s in reg.search("model-call", now)
        ]
    return out


def _price(market_name: str, rows: list[dict[str, Any]]) -> Price:
    if not rows:
        return Price(market=market_name, last=None, vwap=None, low=None, high=None, trades=0, volume=0)
    volume = sum(r["qty"] for r in rows)
    return Price(
        market=market_name,
        last=rows[-1]["price"],
        vwap=sum(r["price"] * r["qty"] for r in rows) / volume if volume else None,
        low=min(r["price"] for r in rows),
        high=max(r["price"] for r in rows),
        trades=len(rows),
        volume=volume,
    )
