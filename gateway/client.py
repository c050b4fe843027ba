"""A small Python client for the gateway: what any HTTP client does, written once.

It signs each request with the caller's key (gateway/auth.py), signs relayed transactions and
vouchers locally (the key never leaves this process), keeps each channel's running voucher,
and retries a submit that lost its answer with the same ``Idempotency-Key`` (so it pays once)::

    client = GatewayClient("http://127.0.0.1:8000", Identity.from_seed("me", "caller"))
    server = client.services(kind="model-call", name="all-MiniLM-L6-v2")[0]
    client.open_account()
    channel = client.open_channel(server["address"], deposit=10 * server["price"])
    job = client.call(server["address"], ["a sentence to embed"], channel)
    vectors = embeddings(job)
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import httpx
import numpy as np

from agora.chain.offchain import call_authorization_typed_data, voucher_typed_data
from agora.chain.types import owned_id
from agora.gateway.auth import SIGNATURE, sign_request
from agora.gateway.errors import GatewayError


class GatewayHTTPError(GatewayError):
    """The gateway answered 4xx/5xx: ``status``, ``kind``, ``detail``, ``field`` as it said them."""

    def __init__(self, status: int, kind: str, detail: str, field: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(f"{status} {kind}: {detail}", field)
        self.status, self.kind, self.detail, self.retry_after = status, kind, detail, retry_after


class GatewayClient:
    def __init__(self, url: str, identity: Any = None, *, timeout: float = 60.0, retries: int = 3) -> None:
        self.http = httpx.Client(base_url=url, timeout=timeout)
        self.identity = identity
        self.retries = retries
        self._chain: dict[str, Any] | None = None
        self._vouchers: dict[str, tuple[int, int]] = {}  # channel id -> (nonce, best voucher amount on it)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    # -- transport -----------------------------------------------------------------------------
    def request(
        self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None, signed: bool = False, headers: dict[str, str] | None = None
    ) -> Any:
        """One request (signed when ``signed``), retried on a lost connection; the JSON answer.
        A signature refused as not this gateway's (it restarted: a new request domain) is made
        again under the domain the gateway publishes now, once."""
        try:
            return self._request(method, path, body, params, signed, headers)
        except GatewayHTTPError as exc:
            if not (signed and exc.status == 401 and exc.field == SIGNATURE and "this gateway" in exc.detail):
                raise
            self._chain = None
            return self._request(method, path, body, params, signed, headers)

    def _request(self, method: str, path: str, body: Any, params: dict[str, Any] | None, signed: bool, headers: dict[str, str] | None) -> Any:
        content = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            request = self.http.build_request(
                method,
                path,
                params={k: v for k, v in (params or {}).items() if v is not None},
                content=content,
                headers={"content-type": "application/json", **(headers or {})} if body is not None else dict(headers or {}),
            )
            if signed:
                if self.identity is None:
                    raise GatewayError("this request is signed: give the client an identity")
                request.headers.update(sign_request(self.identity, self.request_domain, method, request.url.raw_path.decode(), content))
            try:
                response = self.http.send(request)
            except httpx.TransportError as exc:  # the answer may be lost after the gateway acted: retry as is
                last = exc
                time.sleep(0.2 * (attempt + 1))
                continue
            if response.status_code >= 400:
                try:
                    err = response.json()
                except ValueError:
                    err = {"error": "http", "detail": response.text[:500]}
                retry = response.headers.get("Retry-After")
                raise GatewayHTTPError(response.status_code, err.get("error", "http"), err.get("detail", ""), err.get("field"), float(retry) if retry else None)
            return response.json()
        raise GatewayError(f"{method} {path}: no answer after {self.retries + 1} tries ({last})")

    @property
    def chain_id(self) -> int:
        return int(self.chain()["chain_id"])

    @property
    def request_domain(self) -> dict[str, Any]:
        """The EIP-712 domain this gateway's requests are signed under (it names the gateway)."""
        return self.chain()["domains"]["request"]

    def chain(self) -> dict[str, Any]:
        if self._chain is None:
            self._chain = self.request("GET", "/v1/chain")
        return self._chain

    # -- reads -----------------------------------------------------------------------------------
    def services(self, kind: str | None = None, name: str | None = None, max_price: int | None = None) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/services", params={"kind": kind, "name": name, "max_price": max_price})

    def trades(self, since: int = 0, limit: int = 100, market: str | None = None) -> dict[str, Any]:
        return self.request("GET", "/v1/market/trades", params={"since": since, "limit": limit, "market": market})

    def prices(self) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/market/prices")

    def deals(self, limit: int = 20) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/deals", params={"limit": limit})

    def profile(self, address: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/agents/{address}")

    def balance(self, address: str | None = None) -> int:
        return int(self.request("GET", f"/v1/accounts/{address or self.identity.address}")["balance"])

    def channel(self, channel_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/channels/{channel_id}")

    # -- ledger writes, signed here ----------------------------------------------------------------
    def execute(self, op: str, **args: Any) -> dict[str, Any]:
        """Have the gateway prepare ``op`` for this caller, sign it here, submit it: the receipt."""
        answer = self.request("POST", "/v1/tx", body={"op": op, "args": args}, signed=True)
        if answer["status"] == "sign":
            signed = self.identity.sign_transaction(answer["tx"])
            answer = self.request("POST", f"/v1/tx/{answer['prepared_id']}", body={"signed": "0x" + bytes(signed).hex()}, signed=True)
        return answer["receipt"]

    def faucet(self) -> int:
        """A trial market's tokens for this caller (once; the gateway runs with --faucet)."""
        return int(self.request("POST", "/v1/faucet", body={}, signed=True)["amount"])

    def open_account(self) -> dict[str, Any]:
        return self.execute("open_account")

    def open_channel(self, server: str, deposit: int, seconds: int = 3600) -> str:
        """A channel with ``deposit`` for ``server``, open ``seconds``: its id."""
        channel_id = owned_id(self.identity.address, "channel", server, uuid.uuid4())  # only this caller may open it
        now = int(self.chain_now())
        self.execute("open_channel", terms={"channel_id": channel_id, "recipient": server, "amount": deposit, "expiration": now + seconds})
        return channel_id

    def chain_now(self) -> int:
        return int(self.request("GET", "/v1/chain")["now"])

    # -- paid calls ----------------------------------------------------------------------------------
    def voucher(self, channel_id: str, price: int) -> dict[str, Any]:
        """The payment for one more call of ``price`` on the channel: the cumulative amount since
        its last claim (a claim moves the nonce on and vouchers start again from zero)."""
        return self._voucher(channel_id, price)[0]

    def _voucher(self, channel_id: str, price: int) -> tuple[dict[str, Any], int]:
        """The payment and the channel nonce it is signed for."""
        state = self.channel(channel_id)
        nonce, held = self._vouchers.get(channel_id, (state["nonce"], 0))
        if nonce != state["nonce"]:
            held = 0
        amount = held + price
        domain = self.chain()["domains"]["channel"]
        signature = self.identity.sign_typed_data(voucher_typed_data(domain, channel_id, state["nonce"], amount))
        return {"kind": "channel", "channel_id": channel_id, "amount": amount, "signature": signature}, state["nonce"]

    def call(
        self, service: str, inputs: list[str], channel_id: str, *, price: int | None = None, wait: float = 30.0, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Call the served model at ``service`` on ``inputs``, paying from ``channel_id``; the job
        (answered or refused). Lost answers are retried with the same idempotency key. A voucher
        refused because the server claimed the channel between signing and serving (its nonce
        moved on; nothing was paid) is signed again for the new nonce and sent once more."""
        if price is None:
            price = next(s["price"] for s in self.services(kind="model-call") if s["address"].lower() == service.lower())
        key = idempotency_key or uuid.uuid4().hex
        for attempt in range(2):
            payment, nonce = self._voucher(channel_id, price)
            try:
                job = self.request(
                    "POST",
                    "/v1/jobs",
                    body={"service": service, "inputs": inputs, "payment": payment},
                    params={"wait": wait},
                    signed=True,
                    headers={"Idempotency-Key": key if attempt == 0 else f"{key}-renewed"},
                )
            except GatewayHTTPError as exc:
                if exc.status != 402 or attempt or self.channel(channel_id)["nonce"] == nonce:
                    raise
                self._vouchers[channel_id] = (nonce + 1, 0)  # claimed meanwhile: vouchers start again from zero
                continue
            if job["status"] in ("answered", "settled"):
                self._vouchers[channel_id] = (nonce, payment["amount"])
            return job
        raise AssertionError("unreachable")

    # -- calls paid by an escrow (one escrow, one call) ---------------------------------------------
    def open_escrow(self, service: str, seconds: int = 600) -> dict[str, Any]:
        """Lock one call's price for ``service`` in an escrow (terms as the gateway quotes them);
        the quote: ``terms`` (with the escrow id), ``release`` and ``dispute``."""
        quote = self.request("GET", f"/v1/services/{service}/escrow", params={"buyer": self.identity.address, "seconds": seconds})
        self.execute("open_escrow", terms=quote["terms"])
        return quote

    def call_escrowed(self, service: str, inputs: list[str], escrow_id: str, *, wait: float = 30.0, idempotency_key: str | None = None) -> dict[str, Any]:
        """Call the served model at ``service`` on ``inputs``, paid by the open escrow ``escrow_id``;
        the job. Check the answer, then ``release(job)`` pays it (or ``dispute(job)``)."""
        listed = next((s for s in self.services(kind="model-call") if s["address"].lower() == service.lower()), None)
        if listed is None:
            raise ValueError(f"no model-call service at {service} in this market")
        terms = listed["terms"]
        typed = call_authorization_typed_data(self.chain()["domains"]["escrow"], escrow_id, service, str(terms["model_hash"]), str(terms["task"]), inputs)
        payment = {"kind": "escrow", "escrow_id": escrow_id, "authorization": self.identity.sign_typed_data(typed)}
        body = {"service": service, "inputs": inputs, "payment": payment}
        return self.request("POST", "/v1/jobs", body=body, params={"wait": wait}, signed=True, headers={"Idempotency-Key": idempotency_key or uuid.uuid4().hex})

    def release(self, job: dict[str, Any]) -> dict[str, Any]:
        """Pay an escrowed job's bill (fee to the server, royalty to the model's owner); the rest
        of the escrow comes back."""
        return self.execute("release_items", escrow_id=job["escrow_id"], amounts=job["release"])

    def dispute(self, job: dict[str, Any]) -> dict[str, Any]:
        """Freeze an escrowed job's escrow: the server puts its result before the arbiter, who
        re-runs the job and pays it or refunds."""
        return self.execute("dispute", escrow_id=job["escrow_id"])

    def job(self, job_id: str, wait: float = 0.0) -> dict[str, Any]:
        return self.request("GET", f"/v1/jobs/{job_id}", params={"wait": wait}, signed=True)

    def jobs(self, limit: int = 20) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/jobs", params={"limit": limit}, signed=True)


def embeddings(job: dict[str, Any]) -> np.ndarray:
    """A job's result as a float32 array (rows x dimensions)."""
    result = job["result"]
    rows, cols = result["shape"]
    return np.frombuffer(base64.b64decode(result["data_b64"]), dtype="<f4").reshape(rows, cols)
