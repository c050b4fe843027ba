"""Typed messages and the signed envelopes that carry them between agents.

A message type is a frozen pydantic model, identified on the wire by the sha256 of its
canonical JSON schema: two agents speak the same protocol exactly when the digests agree.
Every message names the deal it belongs to, so one deal can be traced across agents.

A type is *internal* when an agent only ever sends it to itself through its own timers (an
interval tick, ``ctx.schedule``, the completion of ``ctx.run_off_mailbox`` work): the receiver's
inbox admits one only from the host's own scheduling path, never from another sender, however
well signed (issue 18: a stranger's forged tick drove another agent's timers). A class says so
with ``internal = True``; a class whose name starts with ``_`` is internal unless it says otherwise,
since a type private to its module belongs to no protocol a peer speaks.

An envelope carries one message: sender, target, session (the deal id unless said otherwise),
schema digest, the sender's nonce, an expiry on the runtime's clock, the JSON payload and the
sender's EIP-191 signature over all of those. It is a slotted class rather than a pydantic model
because a simulation moves hundreds of thousands a second; what crosses a process boundary is
still validated on arrival: the header by ``Envelope.check`` and the payload by the message's
pydantic model. In one process the envelope also carries the message object it was sealed from,
so the receiver skips re-parsing what it just saw serialized; pickling drops that object, so a
receiver in another process always parses the payload.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from agora.agents.errors import BadEnvelope, BadSignature, UnknownMessage
from agora.agents.identity import Identity, keccak256, recover_digest


class Message(BaseModel):
    """Base of every protocol message."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    internal: ClassVar[bool] = False
    """Only the receiving agent's own timers deliver it (see the module's docstring)."""

    deal_id: str = ""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "internal" not in cls.__dict__ and cls.__name__.startswith("_"):
            cls.internal = True  # a private class: no peer's protocol, so only its module's agent sends it

    @classmethod
    def schema_digest(cls) -> str:
        digest = _DIGESTS.get(cls)
        if digest is None:
            schema = json.dumps(cls.model_json_schema(), sort_keys=True, separators=(",", ":"))
            digest = _DIGESTS[cls] = hashlib.sha256(schema.encode()).hexdigest()
        return digest


_DIGESTS: dict[type[Message], str] = {}


class Envelope:
    """A message in transit. Build one with :meth:`seal`; the receiver calls :meth:`open`."""

    __slots__ = ("sender", "target", "schema_digest", "session", "nonce", "expires", "payload", "signature", "_message")

    def __init__(
        self,
        sender: str,
        target: str,
        schema_digest: str,
        payload: str,
        nonce: int,
        session: str = "",
        expires: float | None = None,
        signature: str = "",
        message: Message | None = None,
    ) -> None:
        self.sender = sender
        self.target = target
        self.schema_digest = schema_digest
        self.session = session
        self.nonce = nonce
        self.expires = expires
        self.payload = payload
        self.signature = signature
        self._message = message

    def signing_bytes(self) -> bytes:
        expires = "" if self.expires is None else repr(float(self.expires))
        fields = [self.sender, self.target, self.schema_digest, self.session, str(self.nonce), expires, self.payload]
        return keccak256("\n".join(fields).encode())

    @classmethod
    def seal(
        cls,
        identity: Identity,
        target: str,
        message: Message,
        nonce: int,
        *,
        session: str | None = None,
        expires: float | None = None,
        sign: bool = True,
    ) -> Envelope:
        kind = type(message)
        env = cls(
            identity.address,
            target,
            _DIGESTS.get(kind) or kind.schema_digest(),
            message.__pydantic_serializer__.to_json(message).decode(),
            nonce,
            message.deal_id if session is None else session,
            expires,
            "",
            message,
        )
        if sign:
            env.signature = identity.sign_digest(env.signing_bytes())
        return env

    def verify(self) -> None:
        """Raise BadSignature unless the named sender signed exactly this envelope."""
        try:
            signer = recover_digest(self.signing_bytes(), self.signature)
        except Exception as exc:  # noqa: BLE001 - any malformed signature is a bad one
            raise BadSignature(f"unreadable signature from {self.sender}: {exc}") from None
        if signer != self.sender.lower():
            raise BadSignature(f"envelope claims {self.sender} but was signed by {signer}")

    def open(self, types: dict[str, type[Message]], verify: bool = True) -> Message:
        """Check the signature (when asked) and decode the payload into its message type."""
        if verify:
            self.verify()
        try:
            cls = types[self.schema_digest]
        except KeyError:
            raise UnknownMessage(f"no handler for schema {self.schema_digest[:12]}… from {self.sender}") from None
        message = self._message
        if message is not None and type(message) is cls:
            return message
        return cls.model_validate_json(self.payload)

    def check(self) -> Envelope:
        """Validate the header of an envelope that came from another process."""
        for name in ("sender", "target", "schema_digest", "session", "payload", "signature"):
            if type(getattr(self, name)) is not str:
                raise BadEnvelope(f"envelope field {name} must be a str, got {type(getattr(self, name)).__name__}")
        if type(self.nonce) is not int or self.nonce < 0:
            raise BadEnvelope(f"envelope nonce must be a non-negative int, got {self.nonce!r}")
        if self.expires is not None and type(self.expires) not in (int, float):
            raise BadEnvelope(f"envelope expiry must be a number or None, got {self.expires!r}")
        return self

    def replace(self, **changes: Any) -> Envelope:
        """A copy with some fields changed (the cached message is dropped: the payload rules)."""
        fields = {name: getattr(self, name) for name in self.__slots__ if name != "_message"}
        fields.update(changes)
        return Envelope(**fields)

    def _fields(self) -> tuple:
        return (self.sender, self.target, self.schema_digest, self.payload, self.nonce, self.session, self.expires, self.signature)

    def __reduce__(self) -> tuple:
        return (Envelope, self._fields())  # the cached message object stays behind

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Envelope) and self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # unhashable on purpose: an envelope is compared by content, never a dict key

    def describe(self) -> dict[str, Any]:
        return {"sender": self.sender, "target": self.target, "schema": self.schema_digest[:12], "nonce": self.nonce, "session": self.session}

    def __repr__(self) -> str:
        return f"Envelope({self.sender[:10]}… -> {self.target[:10]}…, nonce {self.nonce}, {len(self.payload)} bytes)"
