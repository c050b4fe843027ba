"""Typed messages and the signed envelopes that carry them between agents.

A message type is a frozen pydantic model, identified on the wire by the sha256 of its
canonical JSON schema: two agents speak the same protocol exactly when the digests agree.
Every message names the deal it belongs to, so one deal can be traced across agents.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from typing import Any

from eth_utils import keccak
from pydantic import BaseModel, ConfigDict

from agents.errors import BadSignature, UnknownMessage
from agents.identity import Identity, recover_message


class Message(BaseModel):
    """Base of every protocol message."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    deal_id: str = ""

    @classmethod
    def schema_digest(cls) -> str:
        return _digest(cls)


@cache
def _digest(cls: type[Message]) -> str:
    schema = json.dumps(cls.model_json_schema(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(schema.encode()).hexdigest()


class Envelope(BaseModel):
    """A message in transit: who, to whom, which schema, which nonce, signed by the sender."""

    model_config = ConfigDict(frozen=True)

    sender: str
    target: str
    schema_digest: str
    payload: str
    nonce: int
    signature: str = ""

    def signing_bytes(self) -> bytes:
        fields = [self.sender, self.target, self.schema_digest, str(self.nonce), self.payload]
        return keccak(text="\n".join(fields))

    @classmethod
    def seal(cls, identity: Identity, target: str, message: Message, nonce: int, sign: bool = True) -> Envelope:
        env = cls(
            sender=identity.address,
            target=target,
            schema_digest=message.schema_digest(),
            payload=message.model_dump_json(),
            nonce=nonce,
        )
        return env.model_copy(update={"signature": identity.sign_message(env.signing_bytes())}) if sign else env

    def open(self, types: dict[str, type[Message]], verify: bool = True) -> Message:
        """Check the signature (when asked) and decode the payload into its message type."""
        if verify:
            try:
                signer = recover_message(self.signing_bytes(), self.signature)
            except Exception as exc:  # noqa: BLE001 - any malformed signature is a bad one
                raise BadSignature(f"unreadable signature from {self.sender}: {exc}") from None
            if signer != self.sender:
                raise BadSignature(f"envelope claims {self.sender} but was signed by {signer}")
        try:
            cls = types[self.schema_digest]
        except KeyError:
            raise UnknownMessage(f"no handler for schema {self.schema_digest[:12]}… from {self.sender}") from None
        return cls.model_validate_json(self.payload)

    def describe(self) -> dict[str, Any]:
        return {"sender": self.sender, "target": self.target, "schema": self.schema_digest[:12], "nonce": self.nonce}
