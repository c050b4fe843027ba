"""Paid calls and their jobs: ``POST /v1/jobs``, ``GET /v1/jobs/{id}``, ``GET /v1/jobs`` and the
explorer's list.

Three rules from the first outside attack (issues 18 and 19) shape this file:

- An ``Idempotency-Key`` is 16-128 characters of ``[A-Za-z0-9_-]`` and is namespaced by the
  authenticated caller: one caller's key never answers another's request. A retry that arrives
  while the first request is still being relayed waits for it, and gets its job.
- A wait is authorized before it waits: asking for another caller's job is a 403 at once, not
  after the wait (job ids are public in the explorer). Waits sleep on the event loop, holding no
  worker thread, and each caller may have only ``max_waits`` of them at a time (429 past it,
  naming the limit): a stranger's waits cannot stall health checks or honest calls.
- The payment's state is read from the ledger before the market is asked, outside its lock.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from typing import Any, Final, Literal

from fastapi import Depends, FastAPI, Header, Path, Query
from starlette.concurrency import run_in_threadpool

from agora.gateway.errors import Conflict, Forbidden, GatewayError, NotFound, PaymentRefused, RateLimited
from agora.gateway.market import MarketFront
from agora.gateway.relay import FINAL
from agora.gateway.schemas import EscrowPayment, Job, JobSubmit

IDEMPOTENCY_KEYS = 100_000  # keys remembered (each a few hundred bytes)
KEY_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,128}")


class _Pending(Enum):
    PENDING = "pending"


_PENDING: Final = _Pending.PENDING  # a key whose first request is still being relayed


class IdempotencyKeys:
    """(caller, key) -> (request digest, job id), the oldest forgotten past ``size`` (a retry that
    old with a forgotten key is relayed again, and its spent voucher is refused by the server)."""

    def __init__(self, size: int = IDEMPOTENCY_KEYS) -> None:
        self.size = size
        self._keys: OrderedDict[tuple[str, str], tuple[str, str | None]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def check(key: str) -> str:
        if not KEY_SHAPE.fullmatch(key):
            raise GatewayError(
                f"Idempotency-Key: 16 to 128 characters of A-Z, a-z, 0-9, _ and -, not {key[:40]!r}{'…' if len(key) > 40 else ''} ({len(key)} characters)",
                "Idempotency-Key",
            )
        return key

    def begin(self, caller: str, key: str, digest: str) -> str | None | Literal[_Pending.PENDING]:
        """None: this request now holds the key (``finish`` or ``abandon`` it); a job id: the
        earlier request's; ``_PENDING``: the earlier request is still being relayed."""
        with self._lock:
            found = self._keys.get((caller, key))
            if found is None:
                self._keys[(caller, key)] = (digest, None)
                return None
            if found[0] != digest:
                raise Conflict(f"Idempotency-Key {key!r} was used for a different request", "Idempotency-Key")
            return found[1] or _PENDING

    def finish(self, caller: str, key: str, job_id: str) -> None:
        with self._lock:
            digest, _ = self._keys[(caller, key)]
            self._keys[(caller, key)] = (digest, job_id)
            while len(self._keys) > self.size:
                self._keys.popitem(last=False)

    def abandon(self, caller: str, key: str) -> None:
        """The request holding the key failed before it made a job: a retry relays afresh."""
        with self._lock:
            if (caller, key) in self._keys and self._keys[(caller, key)][1] is None:
                del self._keys[(caller, key)]


class WaitSlots:
    """At most ``per_caller`` waits at a time for each caller."""

    def __init__(self, per_caller: int) -> None:
        if per_caller < 1:
            raise ValueError(f"max_waits is at least 1, not {per_caller}")
        self.per_caller = per_caller
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, caller: str) -> bool:
        with self._lock:
            if self._held.get(caller, 0) >= self.per_caller:
                return False
            self._held[caller] = self._held.get(caller, 0) + 1
            return True

    def give(self, caller: str) -> None:
        with self._lock:
            self._held[caller] -= 1
            if not self._held[caller]:
                del self._held[caller]

    @contextmanager
    def held(self, caller: str) -> Iterator[None]:
        """A slot for the whole block, or RateLimited naming the limit."""
        if not self.take(caller):
            raise RateLimited(
                f"{self.per_caller} concurrent waits per caller: {caller} has {self.per_caller} waiting; retry when one ends, or ask without wait",
                retry_after=1.0,
                field="wait",
            )
        try:
            yield
        finally:
            self.give(caller)


def add_jobs(app: FastAPI, market: MarketFront, signed: Callable[..., Any], *, max_wait: float, max_waits: int) -> None:
    """Add the paid-call and job endpoints to ``app``."""
    keys, slots = IdempotencyKeys(), WaitSlots(max_waits)
    poll = 0.005 if market.kind == "hosted" else 0.02  # on Ray each look at a job is a call to its shard
    claims = _Claims(market)

    def relay(body: JobSubmit, caller: str) -> str:
        """Read the payment's state (no market lock held), then have the gateway agent relay it."""
        ledger = market.ledger
        if isinstance(body.payment, EscrowPayment):
            escrow, block = ledger.escrow(body.payment.escrow_id), ledger.block_number()  # EscrowNotFound: 404
            ticket = {
                "caller": caller,
                "service": body.service,
                "inputs": body.inputs,
                "escrow": escrow.model_dump(mode="json"),
                "from_block": block,
                "authorization": body.payment.authorization,
            }
            return market.ask("relay_escrow", ticket)["job_id"]
        state = ledger.channel(body.payment.channel_id)  # ChannelNotFound: 404
        ticket = {
            "caller": caller,
            "service": body.service,
            "inputs": body.inputs,
            "channel": state.model_dump(mode="json"),
            "amount": body.payment.amount,
            "signature": body.payment.signature,
        }
        return market.ask("relay", ticket)["job_id"]

    async def look(job_id: str) -> dict[str, Any]:
        raw = await run_in_threadpool(market.ask, "job", job_id)
        if raw is None:
            raise NotFound(f"no job {job_id[:64]}", "job_id")
        return raw

    async def wait_for(job_id: str, raw: dict[str, Any], wait: float, goal: frozenset[str]) -> dict[str, Any]:
        deadline = time.monotonic() + min(wait, max_wait)
        while raw["status"] not in goal and time.monotonic() < deadline:
            await asyncio.sleep(poll)  # on the event loop: a waiting request holds no worker thread
            raw = await look(job_id)
        return raw

    async def shown(raw: dict[str, Any]) -> Job:
        job = Job(**raw)
        job.claim_tx = await run_in_threadpool(claims.tx, job)
        return job

    @app.post("/v1/jobs", response_model=Job, status_code=200, summary="Call a served model, paying with a channel voucher or an escrow")
    async def submit_job(
        body: JobSubmit,
        caller: str = Depends(signed),
        idempotency_key: str | None = Header(
            default=None,
            description="16-128 characters of [A-Za-z0-9_-], the caller's own: a retried submit with the same key returns the same job and pays once",
        ),
        wait: float = Query(default=10.0, ge=0, le=60, description="seconds to wait for the answer before returning the job as it stands"),
    ) -> Job:
        job_id: str | None = None
        if idempotency_key is not None:
            IdempotencyKeys.check(idempotency_key)
            digest = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
            deadline = time.monotonic() + max_wait
            while (begun := keys.begin(caller, idempotency_key, digest)) is _PENDING:
                if time.monotonic() > deadline:
                    raise Conflict(f"Idempotency-Key {idempotency_key!r}: the first request with it is still being relayed", "Idempotency-Key")
                await asyncio.sleep(0.02)
            job_id = begun
        if job_id is None:
            try:
                job_id = await run_in_threadpool(relay, body, caller)
            except BaseException:
                if idempotency_key is not None:
                    keys.abandon(caller, idempotency_key)
                raise
            if idempotency_key is not None:
                keys.finish(caller, idempotency_key, job_id)
        raw = await look(job_id)
        if slots.take(caller):  # at its cap, the caller gets the job as it stands (the relay is done)
            try:
                raw = await wait_for(job_id, raw, wait, FINAL | {"answered"})
            finally:
                slots.give(caller)
        job = await shown(raw)
        if job.status == "refused" and job.reason.startswith("payment refused"):
            raise PaymentRefused(f"{job.reason} (job {job.job_id})", "payment")
        return job

    @app.get("/v1/jobs/{job_id}", response_model=Job, summary="A job's status, result, metering and receipt (the submitter's own)")
    async def get_job(job_id: str = Path(max_length=100), caller: str = Depends(signed), wait: float = Query(default=0.0, ge=0, le=60)) -> Job:
        raw = await look(job_id)
        if raw["caller"] != caller:  # before any wait
            raise Forbidden("a job is visible to the caller who submitted it", "job_id")
        if wait > 0 and raw["status"] not in FINAL:
            with slots.held(caller):
                raw = await wait_for(job_id, raw, wait, FINAL)
        return await shown(raw)

    @app.get("/v1/jobs", response_model=list[Job], summary="The caller's recent jobs, newest first (results left out)")
    def my_jobs(caller: str = Depends(signed), limit: int = Query(default=20, ge=1, le=200)) -> list[Job]:
        return [Job(**j) for j in market.ask("recent_jobs", 10_000) if j["caller"] == caller][:limit]

    @app.get("/v1/explorer/jobs", summary="Recent gateway jobs' journeys, for the explorer (no inputs or results)")
    def explorer_jobs(limit: int = Query(default=20, ge=1, le=200)) -> list[dict[str, Any]]:
        return [{**j, "claim_tx": claims.tx(Job(**j))} for j in market.ask("recent_jobs", limit)]


_ClaimKey = str | tuple[str, int]  # an escrow's id, or a channel's id and nonce


class _Claims:
    """Each settled job's claim (or release, or refund) transaction, from the ledger's events:
    read incrementally (each block once), outside any lock other requests need; only the merge
    into the table holds this one's lock."""

    def __init__(self, market: MarketFront) -> None:
        self.market = market
        self.claimed: dict[_ClaimKey, str] = {}  # (channel id, nonce) -> the claim's tx, escrow id -> its release's or refund's
        self.scanned = 0  # the next block to read events from
        self._lock = threading.Lock()

    def tx(self, job: Job) -> str | None:
        if job.status not in ("settled", "refunded") or job.claim_tx:
            return job.claim_tx
        key: _ClaimKey = job.escrow_id.lower() if job.payment == "escrow" else (job.channel_id.lower(), job.nonce)
        if key not in self.claimed:
            found: dict[_ClaimKey, str] = {}
            last = self.scanned
            for e in self.market.ledger.events(from_block=self.scanned):
                if e.kind == "ChannelClaimed":
                    found[(str(e.args.get("channel_id", "")).lower(), int(e.args.get("nonce", -1)))] = e.tx_hash
                elif e.kind in ("Released", "Refunded"):
                    found[str(e.args.get("deal_id", "")).lower()] = e.tx_hash
                last = max(last, e.block + 1)
            with self._lock:
                self.claimed.update(found)
                self.scanned = max(self.scanned, last)
        return self.claimed.get(key)
