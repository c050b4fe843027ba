"""The gateway's errors: one root, each with the HTTP status it answers with.

The app turns every :class:`GatewayError` into ``{"error": kind, "detail": reason}`` with its
status, so a caller in any language learns what was wrong and nothing changed.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""

    status = 400
    kind = "bad_request"
    retry_after: float | None = None  # seconds, sent as Retry-After where set

    def __init__(self, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class Mismatch(GatewayError, ValueError):
    """Signed content that is not what the gateway prepared or quoted (a transaction's bytes
    another target, call, value, chain, nonce or signer; or bytes that do not decode): refused
    before anything is sent, the field named. The prepared write stays its owner's to retry."""

    status, kind = 400, "mismatch"


class Invalid(GatewayError, ValueError):
    """A field of the request is wrong: the detail names it and says why."""

    status, kind = 422, "invalid"


class Unauthorized(GatewayError):
    """A missing, malformed, wrong, expired or replayed request signature."""

    status, kind = 401, "unauthorized"


class Forbidden(GatewayError):
    """Signed correctly, but by someone who may not see or do this (another caller's job)."""

    status, kind = 403, "forbidden"


class NotFound(GatewayError, KeyError):
    status, kind = 404, "not_found"


class Conflict(GatewayError):
    """The request contradicts state: an idempotency key reused for a different request."""

    status, kind = 409, "conflict"


class PaymentRefused(GatewayError):
    """The payment does not pay: a voucher that adds the wrong amount, a channel to someone else."""

    status, kind = 402, "payment_refused"


class RateLimited(GatewayError):
    """Too many requests (or concurrent waits) from one address (or, unsigned, one client):
    retry after a while."""

    status, kind = 429, "rate_limited"

    def __init__(self, detail: str, retry_after: float, field: str | None = None) -> None:
        super().__init__(detail, field)
        self.retry_after = retry_after


class Unavailable(GatewayError):
    """The market, or the chain node behind it, did not answer in time: retry after a while."""

    status, kind = 503, "unavailable"

    def __init__(self, detail: str, field: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(detail, field)
        self.retry_after = retry_after
