"""Requests signed with the caller's Ethereum key: no passwords, no sessions.

Each request carries four headers: the caller's address, a timestamp, a nonce and a signature
over EIP-712 typed data binding the method, the path with its query, the body's keccak, the
timestamp and the nonce, under a domain naming this gateway: the chain, the gateway agent's
address (``verifyingContract``) and a salt drawn when this gateway started, all published by
``GET /v1/chain`` as ``domains.request``. A request signed for one gateway is refused by every
other, even one on the same market and chain with the same agent key (issue 19, item 9: a
gateway that saw a caller's request could otherwise replay it at another within the skew). The
gateway
recovers the signer and checks it is the address, that the timestamp is within
``max_skew`` seconds of its clock, and that the nonce was not used by that address inside
that window (a captured request cannot be replayed, and the nonce cache only holds a window's
worth). Any wallet that signs typed data (eth_account, MetaMask's ``eth_signTypedData_v4``,
ethers' ``signTypedData``) can call the gateway.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections import OrderedDict
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import is_address, keccak, to_checksum_address

from agora.gateway.errors import RateLimited, Unauthorized

ADDRESS, TIMESTAMP, NONCE, SIGNATURE = "Agora-Address", "Agora-Timestamp", "Agora-Nonce", "Agora-Signature"
HEADERS = (ADDRESS, TIMESTAMP, NONCE, SIGNATURE)
MAX_NONCE = 2**256 - 1

_TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
        {"name": "salt", "type": "bytes32"},
    ],
    "Request": [
        {"name": "method", "type": "string"},
        {"name": "path", "type": "string"},
        {"name": "body", "type": "bytes32"},
        {"name": "timestamp", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
    ],
}


def request_domain(chain_id: int, gateway: str, salt: str | None = None) -> dict[str, Any]:
    """The domain requests to one gateway are signed under: its chain, its agent's address and
    ``salt`` (32 bytes, hex; a fresh one when None, so two gateways never share a domain)."""
    salt = "0x" + secrets.token_hex(32) if salt is None else salt
    if not (isinstance(salt, str) and len(salt) == 66 and salt.startswith("0x")):
        raise ValueError(f"salt is 32 bytes as 0x-prefixed hex, not {salt!r}")
    return {"name": "Agora Gateway", "version": "2", "chainId": int(chain_id), "verifyingContract": to_checksum_address(gateway), "salt": salt.lower()}


def request_typed_data(domain: dict[str, Any], method: str, path: str, body: bytes, timestamp: int, nonce: int) -> dict[str, Any]:
    """What the caller signs: ``domain`` is the gateway's (``GET /v1/chain``: ``domains.request``);
    ``path`` is the URL path with its query string, as sent."""
    return {
        "types": _TYPES,
        "primaryType": "Request",
        "domain": dict(domain),
        "message": {"method": method.upper(), "path": path, "body": keccak(body), "timestamp": timestamp, "nonce": nonce},
    }


def sign_request(
    signer: Any, domain: dict[str, Any], method: str, path: str, body: bytes = b"", timestamp: int | None = None, nonce: int | None = None
) -> dict[str, str]:
    """The headers that authenticate one request to the gateway whose request ``domain`` this is;
    ``signer`` has ``address`` and ``sign_typed_data`` (an :class:`agents.identity.Identity` or a wallet)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    nonce = secrets.randbits(64) if nonce is None else nonce
    signature = signer.sign_typed_data(request_typed_data(domain, method, path, body, timestamp, nonce))
    return {ADDRESS: signer.address, TIMESTAMP: str(timestamp), NONCE: str(nonce), SIGNATURE: signature}


class Verifier:
    """Checks request signatures made for this gateway's ``domain`` (:func:`request_domain`) and
    remembers each address's nonces for the skew window."""

    def __init__(self, domain: dict[str, Any], max_skew: float = 30.0, clock: Any = time.time) -> None:
        self.domain = dict(domain)
        self.max_skew = max_skew
        self.clock = clock
        self._seen: OrderedDict[tuple[str, int], float] = OrderedDict()  # (address, nonce) -> forget after
        self._lock = threading.Lock()

    def verify(self, method: str, path: str, body: bytes, headers: Any) -> str:
        """The checksummed address that signed this request, or :class:`Unauthorized` saying why."""
        missing = [h for h in HEADERS if not headers.get(h)]
        if missing:
            raise Unauthorized(f"missing header{'s' if len(missing) > 1 else ''} {', '.join(missing)}: sign each request (see the README's walk-through)")
        address = headers[ADDRESS]
        if not is_address(address):
            raise Unauthorized(f"{ADDRESS} {address[:64]!r} is not an address", ADDRESS)
        try:
            timestamp, nonce = int(headers[TIMESTAMP]), int(headers[NONCE])
        except ValueError:
            raise Unauthorized(f"{TIMESTAMP} and {NONCE} must be decimal integers", TIMESTAMP) from None
        if not 0 <= nonce <= MAX_NONCE or timestamp < 0:
            raise Unauthorized(f"{NONCE} must be a uint256 and {TIMESTAMP} not negative", NONCE)
        now = self.clock()
        if abs(now - timestamp) > self.max_skew:
            raise Unauthorized(f"expired: signed at {timestamp}, the gateway's clock says {int(now)} (at most {self.max_skew:.0f} s apart)", TIMESTAMP)
        try:
            signer = Account.recover_message(
                encode_typed_data(full_message=request_typed_data(self.domain, method, path, body, timestamp, nonce)), signature=headers[SIGNATURE]
            )
        except Exception:  # noqa: BLE001 - a malformed signature recovers nobody
            signer = None
        address = to_checksum_address(address)
        if signer != address:
            where = f"{self.domain['verifyingContract']}, salt {self.domain['salt'][:10]}…, chain {self.domain['chainId']}"
            raise Unauthorized(
                f"wrong signature: it does not sign this {method.upper()} {path} for {address} at this gateway ({where}: "
                "sign under GET /v1/chain's domains.request)",
                SIGNATURE,
            )
        with self._lock:
            while self._seen and next(iter(self._seen.values())) < now:
                self._seen.popitem(last=False)
            key = (address, nonce)
            if key in self._seen:
                raise Unauthorized(f"replayed: nonce {nonce} from {address} was already used", NONCE)
            self._seen[key] = now + 2 * self.max_skew  # past this, the timestamp check refuses it anyway
        return address


class RateLimiter:
    """A token bucket per key (an address, or a client's host when unsigned): ``rate`` requests a
    second on average, bursts of ``burst``. Over it, :class:`RateLimited` with the seconds to wait."""

    def __init__(self, rate: float = 20.0, burst: int = 40, clock: Any = time.monotonic, max_keys: int = 100_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a rate limit needs rate > 0 and burst >= 1, got {rate} and {burst}")
        self.rate, self.burst, self.clock, self.max_keys = rate, burst, clock, max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str) -> None:
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
                raise RateLimited(f"rate limit: {self.rate:g} requests/s (bursts of {self.burst}) for {key}; retry in {wait:.2f} s", retry_after=wait)
            self._buckets[key] = (tokens - 1.0, now)
            while len(self._buckets) > self.max_keys:  # the least recently seen go first
                self._buckets.popitem(last=False)

    @staticmethod
    def retry_after_header(seconds: float) -> str:
        return str(max(1, math.ceil(seconds)))
