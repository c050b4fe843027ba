"""Relayed ledger writes: ``POST /v1/tx`` prepares a caller's own write, ``POST /v1/tx/{id}``
sends the transaction the caller signed for it.

The gateway never holds a caller's key; it holds what it prepared for them, and relays only
that. The ledger decodes the signed bytes and refuses, before anything is sent, any that are not
exactly the prepared transaction (``chain.errors.SignedTxMismatch``: another target, call, value,
chain id, nonce, gas or signer, or bytes that do not decode); here that is a 400 naming
``signed``. Such a refusal leaves the prepared write in place for the same caller to retry with
the right bytes: nothing was sent, and nobody else may submit it.

No lock that other requests need is held while the ledger talks to the node: the ledgers are
thread-safe on their own (the EVM ledger writes one sender at a time), and the only state here,
the prepared writes, is held under its own lock for dictionary work alone. A node that takes a
transaction and does not mine it is waited on for the ledger's ``write_timeout`` at most, then
the caller gets a 503 naming the node, and the prepared write stays for a retry of the same
bytes (which then finds the transaction the node already has, or sends it once).
"""

from __future__ import annotations

import hashlib
import inspect
import threading
import time
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, Path
from fastapi.encoders import jsonable_encoder
from pydantic import TypeAdapter, ValidationError

from agora.chain import errors as chain_errors
from agora.chain.ledger import DeferredSigner, Ledger, SignatureNeeded
from agora.chain.types import Prepared
from agora.gateway.errors import Conflict, Forbidden, Invalid, Mismatch, NotFound, PaymentRefused, Unavailable
from agora.gateway.market import MarketFront
from agora.gateway.schemas import ID_PATTERN, SignedTx, TxAnswer, TxRequest, first_error, named

PREPARED_TTL = 600.0  # seconds a prepared write waits for its signature


@dataclass
class _Entry:
    sender: str
    made_at: float
    prepared: Prepared
    sending: bool = False  # a submit of it is under way


class PreparedWrites:
    """The writes prepared for callers, by id: each submitted by its own caller, once, with
    bytes the ledger finds to be it. Thread-safe; holds its lock for dictionary work only."""

    def __init__(self, ttl: float = PREPARED_TTL, clock: Callable[[], float] = time.time) -> None:
        self.ttl, self.clock = ttl, clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def add(self, sender: str, prepared: Prepared) -> str:
        pid = "0x" + hashlib.sha256(f"{sender}:{time.time_ns()}:{prepared.op}:{id(prepared)}".encode()).hexdigest()
        now = self.clock()
        with self._lock:
            for key in [k for k, e in self._entries.items() if now - e.made_at > self.ttl and not e.sending]:
                del self._entries[key]
            self._entries[pid] = _Entry(sender, now, prepared)
        return pid

    def take(self, pid: str, caller: str) -> Prepared:
        """The prepared write ``pid``, marked as being sent: NotFound, Forbidden (another
        caller's: it stays theirs) or Conflict (a submit of it is under way)."""
        with self._lock:
            entry = self._entries.get(pid)
            if entry is None or self.clock() - entry.made_at > self.ttl:
                raise NotFound(f"no prepared write {pid[:18]}… (prepared writes live {self.ttl / 60:.0f} minutes)", "prepared_id")
            if entry.sender != caller:
                raise Forbidden("that write was prepared for another sender", "prepared_id")
            if entry.sending:
                raise Conflict(f"prepared write {pid[:18]}… is being submitted already", "prepared_id")
            entry.sending = True
            return entry.prepared

    def keep(self, pid: str) -> None:
        """The submit was refused before the write could count: its owner may submit it again."""
        with self._lock:
            if pid in self._entries:
                self._entries[pid].sending = False

    def done(self, pid: str) -> None:
        with self._lock:
            self._entries.pop(pid, None)


def add_ledger_writes(app: FastAPI, market: MarketFront, signed: Callable[..., Any], retry_after: float) -> PreparedWrites:
    """Add ``POST /v1/tx`` and ``POST /v1/tx/{prepared_id}`` to ``app``; the prepared writes."""
    prepared = PreparedWrites()

    @app.post("/v1/tx", response_model=TxAnswer, summary="Prepare a ledger write for the signer (sign the returned tx, post it back)")
    def tx(body: TxRequest, caller: str = Depends(signed)) -> TxAnswer:
        if body.op == "open_account" and market.ledger.balance_of(caller) == 0:
            # opening an account hands the key the chain's gas: not to every fresh key a stranger makes
            raise PaymentRefused(
                "open_account: this gateway pays an account's gas only for a key that holds tokens; "
                "receive some first (a transfer, or POST /v1/faucet on a trial market)",
                "op",
            )
        call = _bound(market.ledger, body.op, body.args, caller)
        try:
            receipt = call()  # no market lock: the ledger draws the sender's nonce under its own
        except (chain_errors.InvalidArgument, chain_errors.InvalidAmount) as exc:
            detail = str(exc).strip("'\"")
            name = named(detail)
            if name in body.args:
                raise Invalid(f"args.{detail}", f"args.{name}") from None
            raise Invalid(detail, "args") from None
        except SignatureNeeded as need:
            pid = prepared.add(caller, need.prepared)
            return TxAnswer(status="sign", prepared_id=pid, tx=jsonable_encoder(need.prepared.tx))
        return TxAnswer(status="done", receipt=receipt.model_dump(mode="json"))

    @app.post("/v1/tx/{prepared_id}", response_model=TxAnswer, summary="Submit the signed transaction of a prepared write")
    def submit(body: SignedTx, prepared_id: str = Path(pattern=ID_PATTERN), caller: str = Depends(signed)) -> TxAnswer:
        try:
            raw = bytes.fromhex(body.signed[2:])
        except ValueError:
            raise Mismatch("signed: not whole hex bytes (an odd number of digits)", "signed") from None
        write = prepared.take(prepared_id, caller)
        try:
            receipt = market.ledger.submit(write, raw)
        except chain_errors.SignedTxMismatch as exc:  # refused before anything was sent
            prepared.keep(prepared_id)
            raise Mismatch(str(exc), "signed") from None
        except chain_errors.NodeUnavailable as exc:  # sent, maybe: the same bytes again learn its fate
            prepared.keep(prepared_id)
            raise Unavailable(
                f"{exc}{node_name(market.ledger)}; post the same signed bytes to /v1/tx/{prepared_id[:18]}… again to learn its outcome", None, retry_after
            ) from None
        except BaseException:
            prepared.done(prepared_id)
            raise
        prepared.done(prepared_id)
        return TxAnswer(status="done", receipt=receipt.model_dump(mode="json"))

    return prepared


def node_name(ledger: Any) -> str:
    """`` (node http://host:port)`` for a ledger on a JSON-RPC node (its scheme, host and port
    alone: a URL's path or query may hold an API key), else nothing."""
    from urllib.parse import urlsplit

    uri = getattr(getattr(getattr(ledger, "w3", None), "provider", None), "endpoint_uri", None)
    if not isinstance(uri, str):
        return ""
    parts = urlsplit(uri)
    return f" (node {parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''})"


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
            where, detail = first_error(exc.errors(), within=("args", p.name))
            raise Invalid(detail, where) from None
    signer = DeferredSigner(caller)
    return lambda: method(signer, **values)
