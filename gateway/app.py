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
of the gateway agent take the market's lock. The endpoints live by concern: this file (errors,
who is asking, the assembly, the faucet, health), reads.py (public market state), writes.py
(relayed ledger writes) and jobs.py (paid calls).

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

import threading
from importlib import resources
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import ValidationError

from agora.agents.errors import AgentsError, UnknownOffer
from agora.chain import errors as chain_errors
from agora.gateway.auth import RateLimiter, Verifier, request_domain
from agora.gateway.errors import Conflict, GatewayError, Mismatch, Unavailable
from agora.gateway.jobs import add_jobs
from agora.gateway.market import MarketFront
from agora.gateway.reads import add_reads
from agora.gateway.schemas import (
    ErrorBody,
    first_error,
    named,
)
from agora.gateway.writes import add_ledger_writes, node_name

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

    # -- public reads (reads.py) ------------------------------------------------------------------
    add_reads(app, market, anyone, chain_id, domain)

    # -- relayed, signed ledger writes (writes.py) ------------------------------------------------
    add_ledger_writes(app, market, signed, retry_after)

    # -- paid calls (jobs.py) --------------------------------------------------------------------
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
        return HTMLResponse(explorer_html())

    @app.get(f"{API}/health", summary="Liveness: the gateway and its ledger answer")
    def health() -> dict[str, Any]:
        try:
            now = int(market.ledger.now())
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            raise Unavailable(f"the ledger does not answer: {exc}", None, retry_after) from None
        return {"ok": True, "now": now, "market": market.kind}

    return app


def explorer_html() -> str:
    """The market explorer's page, shipped inside the installed package."""
    return resources.files("agora.gateway").joinpath("explorer.html").read_text()
