"""The gateway's HTTP face: FastAPI over a :class:`~agora.gateway.market.MarketFront`.

Versioned under ``/v1`` and described by the generated OpenAPI spec (``/openapi.json``, with
docs at ``/docs``). Reads of public market state (services, market data, profiles, accounts,
channels) need no signature; anything that acts for a caller (a relayed ledger write, a paid
call, reading one's own jobs) is signed with the caller's key (gateway/auth.py). Every error is
a 4xx with ``{"error", "detail", "field"}`` and leaves the market as it was; rate limits
answer 429 with ``Retry-After``; a chain node that does not answer a write within
``write_timeout`` is a 503 naming the node, with ``Retry-After``.

Nothing here waits on the chain node while holding a lock other requests need: ledger reads and
relayed writes go to the (thread-safe) ledger directly, and only reads of the registry and asks
of the gateway agent take the market's lock. The endpoints live in three files: this one (public
reads, errors, the assembly), writes.py (relayed ledger writes) and jobs.py (paid calls).

How a caller with only a key and an HTTP client pays for a model call:

1. ``GET /v1/services?kind=model-call`` lists the servers of each model with the price per call.
2. ``POST /v1/tx`` ``open_account`` then ``open_channel`` (a deposit for one server): the
   gateway prepares each transaction, the caller signs it locally and posts it to
   ``/v1/tx/{id}`` (the gateway relays signed transactions; it never sees the key).
3. ``POST /v1/jobs`` with the inputs and a voucher, signed typed data for the cumulative amount
   owed on the channel (chain.offchain.voucher_typed_data): the server checks it, runs the model
   and answers; ``Idempotency-Key`` makes a retried submit return the same job, paying once.
4. ``GET /v1/jobs/{id}``: status, result, metering, and the claim's transaction once settled.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import typing
from importlib import resources
from typing import Any, Literal

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import ValidationError

from agora.agents.billing import escrow_bill, escrow_terms
from agora.agents.errors import AgentsError, UnknownOffer
from agora.chain import errors as chain_errors
from agora.chain.types import check_address, check_id, owned_id
from agora.gateway.auth import RateLimiter, Verifier, request_domain
from agora.gateway.errors import Conflict, GatewayError, Mismatch, NotFound, Unavailable
from agora.gateway.jobs import add_jobs
from agora.gateway.market import MarketFront
from agora.gateway.relay import model_call_service
from agora.gateway.schemas import (
    ADDRESS_PATTERN,
    ID_PATTERN,
    Account,
    ChainInfo,
    ErrorBody,
    EscrowQuote,
    Price,
    Profile,
    Service,
    Trade,
    TradesPage,
    first_error,
    named,
)
from agora.gateway.writes import add_ledger_writes, node_name
from agora.tasks.jobs import MODEL_KINDS

API = "/v1"


# -- the app ------------------------------------------------------------------------------------
def create_app(
    market: MarketFront,
    *,
    rate: float = 20.0,
    burst: int = 40,
    max_skew: float = 30.0,
    max_wait: float = 30.0,
    max_waits: int = 4,
    write_timeout: float | None = 60.0,
    faucet: int = 0,
) -> FastAPI:
    """The gateway app over ``market``; ``rate``/``burst``: each address's (and each unsigned
    client's) requests per second; ``max_skew``: how far a signed timestamp may be from now;
    ``max_wait``: the longest a request waits for a job; ``max_waits``: a caller's waits at a
    time; ``write_timeout``: the longest the ledger waits for a write's receipt (sets the EVM
    ledger's ``write_timeout``; None leaves the ledger's own); ``faucet``: for a trial market,
    ``POST /v1/faucet`` mints this much once to each caller (0: no faucet; the mint is the
    operator's, so supply still equals what was minted)."""
    chain_id = int(market.ledger.domains()["channel"]["chainId"])
    if write_timeout is not None and not write_timeout > 0:
        raise ValueError(f"write_timeout is a number of seconds above 0, not {write_timeout}")
    if write_timeout is not None and hasattr(market.ledger, "write_timeout"):  # the agents' writes are bounded by it too
        market.ledger.write_timeout = write_timeout
    retry_after = float(getattr(market.ledger, "write_timeout", None) or 5.0)
    domain = request_domain(chain_id, market.gateway)  # a fresh salt: no other gateway shares it
    verifier = Verifier(domain, max_skew=max_skew)
    limiter = RateLimiter(rate=rate, burst=burst)

    app = FastAPI(
        title="Agora gateway",
        version="1.0.0",
        description=__doc__,
        responses={400: {"model": ErrorBody}, 429: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    )
    app.state.market = market

    # -- errors: always a 4xx with the reason, never a 500 for bad input --------------------
    def _error(status: int, kind: str, detail: str, field: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(status_code=status, content={"error": kind, "detail": detail, "field": field}, headers=headers)

    @app.exception_handler(GatewayError)
    async def _gateway_error(_: Request, exc: GatewayError) -> JSONResponse:
        headers = {"Retry-After": RateLimiter.retry_after_header(exc.retry_after)} if exc.retry_after is not None else None
        return _error(exc.status, exc.kind, exc.detail, exc.field, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        field, detail = first_error(exc.errors(), skip=("body",))
        return JSONResponse(status_code=422, content={"error": "invalid", "detail": detail, "field": field, "errors": jsonable_encoder(exc.errors())})

    @app.exception_handler(chain_errors.ChainError)
    async def _chain_error(request: Request, exc: chain_errors.ChainError) -> JSONResponse:
        if isinstance(exc, chain_errors.SignedTxMismatch):
            return await _gateway_error(request, Mismatch(str(exc), "signed"))
        if isinstance(exc, chain_errors.NodeUnavailable):
            return await _gateway_error(request, Unavailable(f"{exc}{node_name(market.ledger)}", None, retry_after))
        status = 409
        if isinstance(exc, (chain_errors.InvalidArgument, chain_errors.InvalidAmount)):
            status = 422
        elif isinstance(exc, chain_errors.InsufficientFunds):
            status = 402
        elif isinstance(exc, (chain_errors.ChannelNotFound, chain_errors.EscrowNotFound)):
            status = 404
        elif isinstance(exc, chain_errors.Unauthorized):
            status = 403
        detail = str(exc).strip("'\"")
        return _error(status, type(exc).__name__, detail, named(detail) if status == 422 else None)

    @app.exception_handler(AgentsError)
    async def _agents_error(_: Request, exc: AgentsError) -> JSONResponse:
        return _error(404 if isinstance(exc, UnknownOffer) else 400, type(exc).__name__, str(exc).strip("'\""))

    @app.exception_handler(ValidationError)
    async def _model_error(_: Request, exc: ValidationError) -> JSONResponse:
        field, detail = first_error(exc.errors())
        return _error(422, "invalid", detail, field)

    # -- who is asking -------------------------------------------------------------------------
    async def signed(request: Request) -> str:
        body = await request.body()
        raw = request.scope.get("raw_path")  # the path as sent, percent-encoding and all: what the caller signed
        path = (raw.decode("latin-1") if raw else request.url.path) + (f"?{request.url.query}" if request.url.query else "")
        address = verifier.verify(request.method, path, body, request.headers)
        limiter.take(address)
        return address

    def anyone(request: Request) -> None:
        limiter.take(f"client {request.client.host if request.client else '?'}")

    # -- public reads -------------------------------------------------------------------------
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

    # -- relayed, signed ledger writes (writes.py) ------------------------------------------------
    add_ledger_writes(app, market, signed, retry_after)

    # -- paid calls ----------------------------------------------------------------------------
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

    add_jobs(app, market, signed, max_wait=max_wait, max_waits=max_waits)

    if faucet > 0:
        funded: set[str] = set()
        funded_lock = threading.Lock()

        @app.post(f"{API}/faucet", summary="A trial market's faucet: tokens once per address, to try paid calls")
        def drip(caller: str = Depends(signed)) -> dict[str, Any]:
            with funded_lock:
                if caller in funded:
                    raise Conflict(f"{caller} has had its {faucet} from the faucet", "caller")
                funded.add(caller)
            try:
                receipt = market.ledger.mint(caller, faucet)  # the operator's write, under no lock of the gateway's
            except BaseException:
                with funded_lock:
                    funded.discard(caller)  # not minted (or not known to be): the caller may ask again
                raise
            return {"amount": faucet, "receipt": receipt.model_dump(mode="json")}

    # -- the explorer ----------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def explorer() -> HTMLResponse:
        return HTMLResponse(resources.files("gateway").joinpath("explorer.html").read_text())

    @app.get(f"{API}/health", summary="Liveness: the gateway and its ledger answer")
    def health() -> dict[str, Any]:
        try:
            now = int(market.ledger.now())
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            raise Unavailable(f"the ledger does not answer: {exc}", None, retry_after) from None
        return {"ok": True, "now": now, "market": market.kind}

    return app


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
