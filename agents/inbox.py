"""The receiver's gate: every envelope passes it before any handler sees the message.

Checks, cheapest and most telling first: the payload is under the cap; the envelope has not
expired; the signature is the named sender's (when the runtime signs); the schema is one this agent
speaks, and an internal one (a timer to itself, see agents.messages) came from the host's own
scheduling path; the nonce is new from that sender; the sender is within its rate quota. Each
failure is its own typed error (see agents.errors, and ``InternalMessage`` here); the host logs and
counts it and the agent runs on.

Internal types sit in a table of their own, looked up only when the public one misses: a peer's
message costs no more than before, and a forged timer is refused by the same lookup that would
have found it. The host vouches for a scheduled envelope by identity (the very object it armed),
which no sender can forge, so such an envelope needs no signature check either.

Replays are caught with a sliding window per sender, as IPsec does (RFC 4303): nonces above the
highest seen are new; those within ``window`` below it are checked against a bitmap of the ones
not yet seen (the holes: in-order traffic leaves it zero, so the common case costs no big-integer
shift); older ones are refused. A sender costs one int and a ``window``-bit mask (512 bytes for the
default 4096), however long the run. Rate quotas are token
buckets per sender on the runtime's clock (virtual in a simulation, wall time on Ray), like the
per-sender quotas of Fetch.ai's uAgents; an agent's timers to itself are exempt.
"""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agora.agents.errors import BadEnvelope, ExpiredMessage, PayloadTooLarge, RateLimited, Rejected, ReplayedMessage, UnknownMessage
from agora.agents.messages import Envelope, Message


class InternalMessage(Rejected, PermissionError):
    """A message type internal to the receiver (its timers, scheduled self-messages, off-mailbox
    completions) that did not come from its own scheduling path: another sender's, or a copy."""


class Quota(BaseModel):
    """What one agent accepts from each sender."""

    model_config = ConfigDict(frozen=True)

    rate: float | None = Field(default=None, gt=0, description="messages per second per sender; None: unlimited")
    burst: int = Field(default=50, ge=1, description="messages a sender may send at once before the rate applies")
    max_payload: int = Field(default=4 * 1024 * 1024, ge=1, description="bytes of JSON payload")
    window: int = Field(default=4096, ge=16, description="nonces remembered per sender for replay checks")


class Inbox:
    def __init__(self, owner: str, types: dict[str, type[Message]], quota: Quota, verify: bool) -> None:
        self.owner = owner
        self.types = types
        self._public = {digest: t for digest, t in types.items() if not t.internal}
        self._internal = {digest: t for digest, t in types.items() if t.internal}
        self.quota = quota
        self.verify = verify
        self._max_payload, self._window, self._rate = quota.max_payload, quota.window, quota.rate
        self._full = (1 << quota.window) - 1
        self.rejected: Counter[str] = Counter()
        self._high: dict[str, int] = {}
        # sender -> bitmap of holes: bit i set = nonce (highest - i) NOT yet accepted. In order
        # delivery leaves it 0, so the common case shifts no big integer
        self._holes: dict[str, int] = {}
        self._buckets: dict[str, list[float]] = {}  # sender -> [tokens, last refill time]

    def admit(self, env: Envelope, now: float, authenticated: bool = False, scheduled: bool = False) -> Message:
        """The message inside ``env``, or the typed error saying why it is refused.
        ``authenticated``: the runtime already checked who sent it (a batch signature).
        ``scheduled``: the host's own timer to this agent (the object it armed), the only way in
        for an internal type."""
        if len(env.payload) > self._max_payload:
            raise PayloadTooLarge(f"{len(env.payload)} bytes from {env.sender} exceed the cap of {self._max_payload}")
        if env.expires is not None and now > env.expires:
            raise ExpiredMessage(f"envelope {env.nonce} from {env.sender} expired at {env.expires}, now {now}")
        if self.verify and not (authenticated or scheduled):
            env.verify()
        sender, nonce = env.sender, env.nonce
        cls = self._public.get(env.schema_digest)
        if cls is None:
            cls = self._internal.get(env.schema_digest)
            if cls is None:
                raise UnknownMessage(f"no handler for schema {env.schema_digest[:12]}… from {sender}")
            if not scheduled:
                raise InternalMessage(f"{cls.__name__} is internal to {self.owner}: only its own timers deliver one, not {sender} (nonce {nonce})")
        high = self._high.get(sender, -1)
        if nonce <= high and (high - nonce >= self._window or not (self._holes[sender] >> (high - nonce)) & 1):
            raise ReplayedMessage(f"nonce {nonce} from {sender} was already seen (highest {high})")
        if self._rate is not None and sender != self.owner:
            self._spend(sender, now, self.quota)  # after the replay check: replays cannot drain a quota
        message = env._message
        if type(message) is not cls:  # parsed here unless it was sealed in this process
            try:
                message = cls.model_validate_json(env.payload)
            except ValidationError as exc:  # signed or not, a payload that is not the message it claims
                raise BadEnvelope(f"payload from {sender} is not a valid {cls.__name__}: {exc.errors()[0]['msg']}") from None
        # remember only what was accepted: a refused nonce may come again
        if nonce > high:
            self._high[sender] = nonce
            gap = nonce - high
            if gap == 1:
                holes = self._holes.get(sender, 0)
                if holes:
                    self._holes[sender] = (holes << 1) & self._full
                elif high < 0:
                    self._holes[sender] = 0
            elif gap >= self._window:  # a jump past the window: all below unseen (never a huge int from a huge nonce)
                self._holes[sender] = self._full ^ 1
            else:  # the gap - 1 nonces skipped become holes, at bits 1 .. gap - 1
                self._holes[sender] = ((self._holes.get(sender, 0) << gap) | ((1 << gap) - 2)) & self._full
        else:
            self._holes[sender] ^= 1 << (high - nonce)  # that hole is filled
        return message

    def _spend(self, sender: str, now: float, quota: Quota) -> None:
        bucket = self._buckets.get(sender)
        if bucket is None:
            bucket = self._buckets[sender] = [float(quota.burst), now]
        tokens = min(float(quota.burst), bucket[0] + (now - bucket[1]) * quota.rate)  # type: ignore[operator]
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            raise RateLimited(f"{sender} is over its quota of {quota.rate} messages/s (burst {quota.burst})")
        bucket[0] = tokens - 1.0
