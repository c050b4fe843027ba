"""The gateway's HTTP face: FastAPI over a :class:`~gateway.market.Market`.

Versioned under ``/v1`` and described by the generated OpenAPI spec (``/openapi.json``, with
docs at ``/docs``). Reads of public market state (services, market data, profiles, accounts,
channels) need no signature; anything that acts for a caller (a relayed ledger write, a paid
call, reading one's own jobs) is signed with the caller's key (gateway/auth.py). Every error is
a 4xx with ``{"error", "detail", "field"}`` and leaves the market as it was; rate limits
answer 429 with ``Retry-After``.

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
import hashlib
import inspect
import json
import secrets
import threading
import time
import typing
from collections import OrderedDict
from importlib import resources
from typing import Any, Literal

from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, Field, TypeAdapter, ValidationError, field_validator

from agents.errors import AgentsError, UnknownOffer
from agents.roles.serving import escrow_bill, escrow_terms
from chain import errors as chain_errors
from chain.ledger import DeferredSigner, Ledger, SignatureNeeded
from chain.types import Prepared, check_address, check_id
from gateway.auth import RateLimiter, Verifier
from gateway.errors import Conflict, Forbidden, GatewayError, Invalid, NotFound, PaymentRefused, RateLimited, Unavailable
from gateway.market import Market
from gateway.relay import FINAL, GatewayJob, model_call_service

API = "/v1"
ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
ID_PATTERN = r"^0x[0-9a-fA-F]{64}$"
IDEMPOTENCY_KEYS = 100_000  # keys remembered (each a few hundred bytes)

# the writes a caller may have relayed: its own account, transfers, channels, escrows, deposits, stake
RELAYED_OPS = (
    "open_account", "transfer", "approve", "open_channel", "top_up_channel", "extend_channel", "reclaim_channel",
    "open_escrow", "release", "release_items", "refund", "dispute", "deposit", "request_withdrawal", "withdraw",
    "stake", "request_unstake", "unstake",
)


# -- the API's shapes --------------------------------------------------------------------------
class ErrorBody(BaseModel):
    error: str
    detail: str
    field: str | None = None


class ChainInfo(BaseModel):
    chain_id: int
    ledger: str = Field(description="the ledger backend: memory, embedded (an in-process EVM chain) or rpc (a node)")
    symbol: str
    decimals: int
    gateway: str = Field(description="the gateway agent's address")
    now: int = Field(description="ledger time, unix seconds")
    domains: dict[str, dict[str, Any]] = Field(description="EIP-712 domains of the ledger's contracts (vouchers are signed under 'channel')")
    markets: list[str]


class Service(BaseModel):
    kind: Literal["model", "dataset", "compute", "model-call"]
    address: str
    name: str
    price: int = Field(description="base units per unit")
    unit: str
    reputation: float = Field(description="0..1, relative to the most trusted agent")
    terms: dict[str, Any] = {}


class Trade(BaseModel):
    seq: int
    market: str
    round: int
    t: float
    buyer: str
    seller: str
    price: int
    qty: int
    tx: str


class TradesPage(BaseModel):
    last_seq: int
    trades: list[Trade]


class Price(BaseModel):
    market: str
    last: int | None
    vwap: float | None
    low: int | None
    high: int | None
    trades: int
    volume: int


class Profile(BaseModel):
    address: str
    name: str
    role: str
    reputation: float
    balance: int
    services: list[Service]


class Account(BaseModel):
    address: str
    balance: int


class TxRequest(BaseModel):
    op: Literal[RELAYED_OPS]  # type: ignore[valid-type]
    args: dict[str, Any] = Field(default={}, description="the operation's arguments, as the Ledger method names them (the sender is the signer)")


class TxAnswer(BaseModel):
    status: Literal["sign", "done"] = Field(description="sign: sign `tx` and post it to /v1/tx/{prepared_id}; done: applied")
    prepared_id: str | None = None
    tx: dict[str, Any] | None = None
    receipt: dict[str, Any] | None = None


class SignedTx(BaseModel):
    signed: str = Field(pattern=r"^0x[0-9a-fA-F]+$", max_length=200_000, description="the raw signed transaction, hex")


class ChannelPayment(BaseModel):
    kind: Literal["channel"] = "channel"
    channel_id: str = Field(pattern=ID_PATTERN)
    amount: int = Field(ge=0, le=2**256 - 1, description="cumulative amount owed on the channel since its last claim, this call included")
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$", description="the channel sender's EIP-712 voucher signature")

    @field_validator("channel_id")
    @classmethod
    def _id(cls, v: str) -> str:
        return check_id(v, "channel_id")


class EscrowPayment(BaseModel):
    kind: Literal["escrow"]
    escrow_id: str = Field(pattern=ID_PATTERN, description="an open escrow of the caller's paying the server this one call (terms from /v1/services/{address}/escrow)")

    @field_validator("escrow_id")
    @classmethod
    def _id(cls, v: str) -> str:
        return check_id(v, "escrow_id")


class EscrowQuote(BaseModel):
    terms: dict[str, Any] = Field(description="the args of POST /v1/tx op open_escrow (escrow_id, payees, shares_bps, amount, deadline)")
    release: dict[str, Any] = Field(description="the POST /v1/tx to send once the answer checks out: release_items with each payee's bill")
    dispute: dict[str, Any] = Field(description="the POST /v1/tx to send if it does not: the server puts the result before the arbiter, who re-runs it")


class JobSubmit(BaseModel):
    service: str = Field(pattern=ADDRESS_PATTERN, description="the model server's address (from /v1/services?kind=model-call)")
    inputs: list[str] = Field(min_length=1, max_length=64)
    payment: ChannelPayment | EscrowPayment = Field(discriminator="kind", description="a channel voucher (pay per call) or an escrow opened for this call")

    @field_validator("service")
    @classmethod
    def _service(cls, v: str) -> str:
        return check_address(v, "service")

    @field_validator("inputs")
    @classmethod
    def _inputs(cls, v: list[str]) -> list[str]:
        if any(len(text) > 10_000 for text in v):
            raise ValueError("each input is at most 10,000 characters")
        return v


class Job(GatewayJob):
    """A job as the API shows it."""


# -- the app ------------------------------------------------------------------------------------
def create_app(market: Market, *, rate: float = 20.0, burst: int = 40, max_skew: float = 30.0, max_wait: float = 30.0, faucet: int = 0) -> FastAPI:
    """The gateway app over ``market``; ``rate``/``burst``: each address's (and each unsigned
    client's) requests per second; ``max_skew``: how far a signed timestamp may be from now;
    ``faucet``: for a trial market, ``POST /v1/faucet`` mints this much once to each caller
    (0: no faucet; the mint is the operator's, so supply still equals what was minted)."""
    chain_id = int(market.ledger.domains()["channel"]["chainId"])
    verifier = Verifier(chain_id, max_skew=max_skew)
    limiter = RateLimiter(rate=rate, burst=burst)
    prepared: dict[str, tuple[str, float, Prepared]] = {}  # id -> (sender, made at, prepared)
    # (caller, key) -> (request digest, job id), the oldest forgotten past IDEMPOTENCY_KEYS (a retry
    # that old with a forgotten key is relayed again, and its spent voucher is refused by the server)
    idempotent: OrderedDict[tuple[str, str], tuple[str, str]] = OrderedDict()
    relay_lock = threading.Lock()
    poll = 0.005 if market.kind == "hosted" else 0.02  # on Ray each look at a job is a call to its shard

    app = FastAPI(
        title="Agora gateway",
        version="1.0.0",
        description=__doc__,
        responses={400: {"model": ErrorBody}, 429: {"model": ErrorBody}},
    )
    app.state.market = market

    # -- errors: always a 4xx with the reason, never a 500 for bad input --------------------
    def _error(status: int, kind: str, detail: str, field: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(status_code=status, content={"error": kind, "detail": detail, "field": field}, headers=headers)

    @app.exception_handler(GatewayError)
    async def _gateway_error(_: Request, exc: GatewayError) -> JSONResponse:
        headers = {"Retry-After": RateLimiter.retry_after_header(exc.retry_after)} if isinstance(exc, RateLimited) else None
        return _error(exc.status, exc.kind, exc.detail, exc.field, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        field, detail = _first_error(exc.errors(), skip=("body",))
        return JSONResponse(status_code=422, content={"error": "invalid", "detail": detail, "field": field, "errors": jsonable_encoder(exc.errors())})

    @app.exception_handler(chain_errors.ChainError)
    async def _chain_error(_: Request, exc: chain_errors.ChainError) -> JSONResponse:
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
        return _error(status, type(exc).__name__, detail, _named(detail) if status == 422 else None)

    @app.exception_handler(AgentsError)
    async def _agents_error(_: Request, exc: AgentsError) -> JSONResponse:
        return _error(404 if isinstance(exc, UnknownOffer) else 400, type(exc).__name__, str(exc).strip("'\""))

    @app.exception_handler(ValidationError)
    async def _model_error(_: Request, exc: ValidationError) -> JSONResponse:
        field, detail = _first_error(exc.errors())
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
        led = market.ledger
        return market.locked(lambda: ChainInfo(
            chain_id=chain_id, ledger=market.ledger_kind, symbol=led.symbol, decimals=led.decimals,
            gateway=market.gateway, now=int(led.now()), domains=led.domains(), markets=market.markets(),
        ))

    @app.get(f"{API}/services", response_model=list[Service], dependencies=[Depends(anyone)], summary="Models, datasets, compute and served models, with prices and reputation")
    def services(
        kind: Literal["model", "dataset", "compute", "model-call"] | None = None,
        name: str | None = Query(default=None, max_length=200),
        max_price: int | None = Query(default=None, ge=0, le=2**256 - 1),
        min_reputation: float | None = Query(default=None, ge=0, le=1),
    ) -> list[Service]:
        found = market.locked(lambda: _services(market, kind))
        return [s for s in found if (name is None or s.name == name or s.terms.get("name") == name)
                and (max_price is None or s.price <= max_price) and (min_reputation is None or s.reputation >= min_reputation)]

    @app.get(f"{API}/market/trades", response_model=TradesPage, dependencies=[Depends(anyone)], summary="Recent settled trades, newest last")
    def trades(since: int = Query(default=0, ge=0), limit: int = Query(default=100, ge=1, le=1000), market_name: str | None = Query(default=None, alias="market", max_length=100)) -> TradesPage:
        last, rows = market.tape(since=since, limit=limit, market=market_name)
        return TradesPage(last_seq=last, trades=[Trade(**r) for r in rows])

    @app.get(f"{API}/market/prices", response_model=list[Price], dependencies=[Depends(anyone)], summary="Per market: last, VWAP, range and volume of the recent trades")
    def prices() -> list[Price]:
        _, rows = market.tape(limit=5000)
        return [_price(m, [r for r in rows if r["market"] == m]) for m in market.markets()]

    @app.get(f"{API}/market/stream", dependencies=[Depends(anyone)], summary="Server-sent events: each new trade as it settles (event: trade)",
             response_class=StreamingResponse, responses={200: {"content": {"text/event-stream": {}}}})
    async def stream(request: Request, since: int = Query(default=0, ge=0), once: bool = Query(default=False, description="send what is new and close")) -> StreamingResponse:
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

        def read() -> Profile:
            known = market.agent(who)
            if known is None:
                raise NotFound(f"no agent {who} in this market", "address")
            rep = _reputation(market)
            mine = [s for s in _services(market, None, rep) if s.address == who]
            return Profile(address=who, name=known.get("name", ""), role=known.get("role", ""), reputation=rep.get(who, 0.0),
                           balance=market.ledger.balance_of(who), services=mine)

        return market.locked(read)

    @app.get(f"{API}/accounts/{{address}}", response_model=Account, dependencies=[Depends(anyone)], summary="A balance on the ledger")
    def account(address: str = Path(pattern=ADDRESS_PATTERN)) -> Account:
        who = check_address(address, "address")
        return Account(address=who, balance=market.locked(lambda: market.ledger.balance_of(who)))

    @app.get(f"{API}/channels/{{channel_id}}", dependencies=[Depends(anyone)], summary="A payment channel's state (deposit left, nonce, expiration)")
    def channel(channel_id: str = Path(pattern=ID_PATTERN)) -> dict[str, Any]:
        cid = check_id(channel_id, "channel_id")
        return market.locked(lambda: market.ledger.channel(cid)).model_dump(mode="json")

    @app.get(f"{API}/escrows/{{escrow_id}}", dependencies=[Depends(anyone)], summary="An escrow's state (buyer, payees and shares, amount, deadline, status)")
    def escrow(escrow_id: str = Path(pattern=ID_PATTERN)) -> dict[str, Any]:
        eid = check_id(escrow_id, "escrow_id")
        return market.locked(lambda: market.ledger.escrow(eid)).model_dump(mode="json")

    # -- relayed, signed ledger writes ---------------------------------------------------------
    @app.post(f"{API}/tx", response_model=TxAnswer, summary="Prepare a ledger write for the signer (sign the returned tx, post it back)")
    def tx(body: TxRequest, caller: str = Depends(signed)) -> TxAnswer:
        call = _bound(market.ledger, body.op, body.args, caller)
        try:
            receipt = market.locked(call)
        except (chain_errors.InvalidArgument, chain_errors.InvalidAmount) as exc:
            detail = str(exc).strip("'\"")
            name = _named(detail)
            if name in body.args:
                raise Invalid(f"args.{detail}", f"args.{name}") from None
            raise Invalid(detail, "args") from None
        except SignatureNeeded as need:
            pid = "0x" + hashlib.sha256(f"{caller}:{time.time_ns()}:{body.op}".encode()).hexdigest()
            with relay_lock:
                for key in [k for k, (_, at, _) in prepared.items() if time.time() - at > 600]:
                    del prepared[key]  # a prepared write lives ten minutes
                prepared[pid] = (caller, time.time(), need.prepared)
            return TxAnswer(status="sign", prepared_id=pid, tx=jsonable_encoder(need.prepared.tx))
        return TxAnswer(status="done", receipt=receipt.model_dump(mode="json"))

    @app.post(f"{API}/tx/{{prepared_id}}", response_model=TxAnswer, summary="Submit the signed transaction of a prepared write")
    def submit(body: SignedTx, prepared_id: str = Path(pattern=ID_PATTERN), caller: str = Depends(signed)) -> TxAnswer:
        with relay_lock:
            found = prepared.get(prepared_id)
            if found is None:
                raise NotFound(f"no prepared write {prepared_id[:18]} (prepared writes live ten minutes)", "prepared_id")
            if found[0] != caller:
                raise Forbidden("that write was prepared for another sender", "prepared_id")
            del prepared[prepared_id]  # one submit per prepared write
        try:
            signed_tx = bytes.fromhex(body.signed[2:])
        except ValueError:
            raise Invalid("signed: not hex bytes", "signed") from None
        receipt = market.locked(lambda: market.ledger.submit(found[2], signed_tx))
        return TxAnswer(status="done", receipt=receipt.model_dump(mode="json"))

    # -- paid calls ----------------------------------------------------------------------------
    @app.get(f"{API}/services/{{address}}/escrow", response_model=EscrowQuote, dependencies=[Depends(anyone)],
             summary="Terms of an escrow that pays one call of a served model, and the release that pays it")
    def escrow_quote(address: str = Path(pattern=ADDRESS_PATTERN), seconds: int = Query(default=600, ge=180, le=86_400, description="how long the escrow runs")) -> EscrowQuote:
        who = check_address(address, "address")

        def read() -> EscrowQuote:
            now = market.ledger.now()
            service = model_call_service(market.registry, now, who, "address")
            escrow_id = "0x" + secrets.token_hex(32)
            terms = escrow_terms(service, escrow_id, int(now) + seconds)
            return EscrowQuote(
                terms=terms.model_dump(mode="json", exclude_none=True),
                release={"op": "release_items", "args": {"escrow_id": escrow_id, "amounts": escrow_bill(service)[1]}},
                dispute={"op": "dispute", "args": {"escrow_id": escrow_id}},
            )

        return market.locked(read)

    @app.post(f"{API}/jobs", response_model=Job, status_code=200, summary="Call a served model, paying with a channel voucher or an escrow")
    def submit_job(
        body: JobSubmit,
        caller: str = Depends(signed),
        idempotency_key: str | None = Header(default=None, min_length=1, max_length=128, description="a retried submit with the same key returns the same job and pays once"),
        wait: float = Query(default=10.0, ge=0, le=60, description="seconds to wait for the answer before returning the job as it stands"),
    ) -> Job:
        digest = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
        with relay_lock:
            if idempotency_key is not None and (caller, idempotency_key) in idempotent:
                seen_digest, job_id = idempotent[(caller, idempotency_key)]
                if seen_digest != digest:
                    raise Conflict(f"Idempotency-Key {idempotency_key!r} was used for a different request", "Idempotency-Key")
            elif isinstance(body.payment, EscrowPayment):
                ticket = {"caller": caller, "service": body.service, "inputs": body.inputs, "escrow_id": body.payment.escrow_id}
                job_id = market.ask("relay_escrow", ticket)["job_id"]
            else:
                ticket = {"caller": caller, "service": body.service, "inputs": body.inputs, "channel_id": body.payment.channel_id,
                          "amount": body.payment.amount, "signature": body.payment.signature}
                job_id = market.ask("relay", ticket)["job_id"]
            if idempotency_key is not None and (caller, idempotency_key) not in idempotent:
                idempotent[(caller, idempotency_key)] = (digest, job_id)
                while len(idempotent) > IDEMPOTENCY_KEYS:
                    idempotent.popitem(last=False)
        job = _wait_for(job_id, min(wait, max_wait))
        if job.status == "refused" and job.reason.startswith("payment refused"):
            raise PaymentRefused(f"{job.reason} (job {job.job_id})", "payment")
        return job

    @app.get(f"{API}/jobs/{{job_id}}", response_model=Job, summary="A job's status, result, metering and receipt (the submitter's own)")
    def get_job(job_id: str = Path(max_length=100), caller: str = Depends(signed), wait: float = Query(default=0.0, ge=0, le=60)) -> Job:
        job = _wait_for(job_id, min(wait, max_wait), settled=True)
        if job.caller != caller:
            raise Forbidden("a job is visible to the caller who submitted it", "job_id")
        return job

    @app.get(f"{API}/jobs", response_model=list[Job], summary="The caller's recent jobs, newest first (results left out)")
    def my_jobs(caller: str = Depends(signed), limit: int = Query(default=20, ge=1, le=200)) -> list[Job]:
        return [Job(**j) for j in market.ask("recent_jobs", 10_000) if j["caller"] == caller][:limit]

    @app.get(f"{API}/explorer/jobs", dependencies=[Depends(anyone)], summary="Recent gateway jobs' journeys, for the explorer (no inputs or results)")
    def explorer_jobs(limit: int = Query(default=20, ge=1, le=200)) -> list[dict[str, Any]]:
        return [{**j, "claim_tx": _claim_tx(Job(**j))} for j in market.ask("recent_jobs", limit)]

    def _wait_for(job_id: str, wait: float, settled: bool = False) -> Job:
        deadline = time.monotonic() + wait
        goal = FINAL if settled else FINAL | {"answered"}
        while True:
            raw = market.ask("job", job_id)
            if raw is None:
                raise NotFound(f"no job {job_id[:64]}", "job_id")
            if raw["status"] in goal or time.monotonic() >= deadline:
                break
            time.sleep(poll)
        job = Job(**raw)
        job.claim_tx = _claim_tx(job)
        return job

    claimed: dict[Any, str] = {}  # (channel id, nonce) -> the claim's tx, escrow id -> its release's or refund's, from the ledger's events
    scanned = [0]  # the next block to read events from

    def _claim_tx(job: Job) -> str | None:
        """The claim's transaction: as the server reported it, else from the ledger's events, read
        incrementally (each block once), under the market's lock."""
        if job.status not in ("settled", "refunded") or job.claim_tx:
            return job.claim_tx
        key: Any = job.escrow_id.lower() if job.payment == "escrow" else (job.channel_id.lower(), job.nonce)
        if key not in claimed:
            def scan() -> None:
                for e in market.ledger.events(from_block=scanned[0]):
                    if e.kind == "ChannelClaimed":
                        claimed[(str(e.args.get("channel_id", "")).lower(), int(e.args.get("nonce", -1)))] = e.tx_hash
                    elif e.kind in ("Released", "Refunded"):
                        claimed[str(e.args.get("deal_id", "")).lower()] = e.tx_hash
                    scanned[0] = max(scanned[0], e.block + 1)

            market.locked(scan)
        return claimed.get(key)

    if faucet > 0:
        funded: set[str] = set()

        @app.post(f"{API}/faucet", summary="A trial market's faucet: tokens once per address, to try paid calls")
        def drip(caller: str = Depends(signed)) -> dict[str, Any]:
            with relay_lock:
                if caller in funded:
                    raise Conflict(f"{caller} has had its {faucet} from the faucet", "caller")
                funded.add(caller)
            receipt = market.locked(lambda: market.ledger.mint(caller, faucet))
            return {"amount": faucet, "receipt": receipt.model_dump(mode="json")}

    # -- the explorer ----------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def explorer() -> HTMLResponse:
        return HTMLResponse(resources.files("gateway").joinpath("explorer.html").read_text())

    @app.get(f"{API}/health", summary="Liveness: the market answers")
    def health() -> dict[str, Any]:
        try:
            now = market.locked(lambda: int(market.ledger.now()))
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            raise Unavailable(f"the market does not answer: {exc}") from None
        return {"ok": True, "now": now, "market": market.kind}

    return app


# -- helpers ------------------------------------------------------------------------------------
def _reputation(market: Market) -> dict[str, float]:
    return market.registry.reputation_scores()


def _services(market: Market, kind: str | None, rep: dict[str, float] | None = None) -> list[Service]:
    reg, now = market.registry, float(market.ledger.now())
    rep = _reputation(market) if rep is None else rep
    out: list[Service] = []
    if kind in (None, "model"):
        out += [Service(kind="model", address=m.owner, name=m.name, price=m.price_per_call, unit="call (royalty)", reputation=rep.get(m.owner, 0.0),
                        terms={"model_hash": m.model_hash, "task": m.task, "price_per_1k_tokens": m.price_per_1k_tokens, "license": m.license})
                for t in ("embedding", "generation", "classification") for m in reg.find_models(task=t)]
    if kind in (None, "dataset"):
        out += [Service(kind="dataset", address=d.owner, name=d.name, price=d.price_per_use, unit="use", reputation=rep.get(d.owner, 0.0),
                        terms={"dataset_hash": d.dataset_hash, "items": d.items, "compute_to_data": bool(d.vault)}) for d in reg.find_datasets()]
    if kind in (None, "compute"):
        names = reg.agents()
        out += [Service(kind="compute", address=c.owner, name=names.get(c.owner, {}).get("name", c.owner[:10]), price=c.price_per_second, unit="second",
                        reputation=rep.get(c.owner, 0.0), terms={"gpus": c.gpus, "gpu_memory_mb": c.gpu_memory_mb, "cpus": c.cpus})
                for c in reg.find_compute()]
    if kind in (None, "model-call"):
        out += [Service(kind="model-call", address=s.address, name=s.name, price=s.price, unit="call", reputation=rep.get(s.address, 0.0), terms=dict(s.terms))
                for s in reg.search("model-call", now)]
    return out


def _price(market_name: str, rows: list[dict[str, Any]]) -> Price:
    if not rows:
        return Price(market=market_name, last=None, vwap=None, low=None, high=None, trades=0, volume=0)
    volume = sum(r["qty"] for r in rows)
    return Price(market=market_name, last=rows[-1]["price"], vwap=sum(r["price"] * r["qty"] for r in rows) / volume if volume else None,
                 low=min(r["price"] for r in rows), high=max(r["price"] for r in rows), trades=len(rows), volume=volume)


_UNION_TAGS = {("payment", "channel"), ("payment", "escrow")}  # where a discriminated union's tag sits in an error's location


def _first_error(errors: list[Any], skip: tuple[str, ...] = (), within: tuple[str, ...] = ()) -> tuple[str | None, str]:
    """The first of pydantic's errors as (field, "field: reason"); ``skip``: location parts
    that are not fields (FastAPI's "body"), ``within``: where the validated value sits."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    loc = [str(p) for p in first.get("loc", ()) if p not in skip]
    loc = [p for i, p in enumerate(loc) if not (i and (loc[i - 1], p) in _UNION_TAGS)]  # pydantic names the union's member
    field = ".".join([*within, *loc]) or None
    return field, f"{field}: {first.get('msg')}" if field else str(first.get("msg"))


def _named(detail: str) -> str | None:
    """The field a ledger check names: its messages start with it ("to is not an Ethereum address")."""
    first = detail.split(" ", 1)[0]
    return first if first.isidentifier() else None


def _bound(ledger: Ledger, op: str, args: dict[str, Any], caller: str) -> typing.Callable[[], Any]:
    """``ledger.<op>(DeferredSigner(caller), **args)`` with each argument checked against the
    method's signature (pydantic terms validated), so a wrong field is a 422 naming it."""
    method = getattr(ledger, op)
    params = list(inspect.signature(method).parameters.values())[1:]  # after ``by``
    hints = typing.get_type_hints(getattr(type(ledger), op))
    unknown = sorted(set(args) - {p.name for p in params})
    if unknown:
        raise Invalid(f"args: {op} takes {', '.join(p.name for p in params) or 'no arguments'}, not {', '.join(unknown)}", f"args.{unknown[0]}")
    values: dict[str, Any] = {}
    for p in params:
        if p.name not in args:
            if p.default is inspect.Parameter.empty:
                raise Invalid(f"args.{p.name}: required by {op}", f"args.{p.name}")
            continue
        try:  # strict: a JSON string is no amount, a number no address
            values[p.name] = TypeAdapter(hints.get(p.name, Any)).validate_python(args[p.name], strict=True)
        except ValidationError as exc:
            where, detail = _first_error(exc.errors(), within=("args", p.name))
            raise Invalid(detail, where) from None
    signer = DeferredSigner(caller)
    return lambda: method(signer, **values)
