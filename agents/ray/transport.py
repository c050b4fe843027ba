"""How shards trust each other's envelopes, and the guest shards that join for a while.

Under ``"session"`` signing each shard makes a fresh session key at start; every agent it hosts
signs, once, a delegation to that key with its own key; a batch to another shard carries one
session signature over the digests of all its envelopes, with its senders' delegations. The
receiver checks each delegation the first time it sees it and a batch signature once per batch,
so secp256k1 is paid per batch, not per message; the trust is the same, since a shard holds its
agents' keys anyway. ``"agent"`` signs and verifies every envelope with its agent's own key."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from agora.agents.errors import BadSignature, Rejected, RuntimeFailure
from agora.agents.identity import Identity, keccak256, recover_digest
from agora.agents.messages import Envelope
from agora.agents.ray.peers import Peers

if TYPE_CHECKING:
    from agora.agents.ray.durable import _Countdown


def delegation_digest(agent: str, session: str) -> bytes:
    """What an agent signs to let a shard's session key vouch for its envelopes."""
    return keccak256(f"agora-delegation\n{agent.lower()}\n{session.lower()}".encode())


class _Enqueue(Protocol):
    """The signature of ``Shard._enqueue``, which this mixin calls."""

    def __call__(self, envelope: Envelope, remote: bool, authenticated: bool = False, countdown: _Countdown | None = None) -> None: ...


class SessionTransport:
    """The shard's side of the wire: checking batches that arrive, signing those that leave,
    and the guest shards (a gateway's agents) that join a running deployment."""

    index: int
    signing: str
    received: int
    calls: int
    rejected_batches: int
    _session: Identity
    _delegations: dict[str, str]
    _trusted: dict[str, str]
    _guests: dict[int, tuple[Any, float, list[str]]]
    _guest_grace: float
    _shard_count: int
    _placement: dict[str, int]
    _peers: Peers
    # provided by the shard that mixes this class in (agora.agents.ray.shard.Shard)
    _drop_batches: Callable[[Callable[[int], bool]], None]
    _lose: Callable[[], None]
    _countdown: Callable[[int], _Countdown | None]
    _reject: Callable[[Envelope, Rejected, _Countdown | None], None]
    _enqueue: _Enqueue
    _settle: Callable[[_Countdown | None], None]
    _shard: Callable[[int], Any]

    def admit(self, index: int, handle: Any, addresses: list[str], lease_s: float = 30.0) -> None:
        """Guest shard ``handle`` (a gateway that joined this deployment, agora.agents.ray.deployment.Guest)
        hosts ``addresses`` as shard ``index``: envelopes to them go to it. A guest is not
        journaled: it renews its lease every few seconds while it stays (a shard restarted
        meanwhile learns it again), and one whose lease lapses is let go as if it had left."""
        if index < self._shard_count or index in self._guests and self._guests[index][0] != handle:
            raise RuntimeFailure(f"shard index {index} is taken")
        self._guests[index] = (handle, time.time() + lease_s, list(addresses))
        for address in addresses:
            self._placement[address] = index

    def dismiss(self, index: int) -> None:
        """Guest ``index`` left (or its lease lapsed): its agents are no longer here, and what was
        sent to them and never acknowledged is dropped (a guest keeps nothing across a restart)."""
        guest = self._guests.pop(index, None)
        for address in guest[2] if guest else []:
            if self._placement.get(address) == index:
                del self._placement[address]
        self._drop_batches(lambda dest: dest == index)

    def _lapse(self) -> None:
        now = time.time()
        for index in [i for i, (_, until, _) in self._guests.items() if until < now]:
            self.dismiss(index)
        if self._guest_grace and now > self._guest_grace:  # guests that never came back after a restart
            self._guest_grace = 0.0
            self._drop_batches(lambda dest: dest >= self._shard_count and dest not in self._guests)

    def deliver(self, envelopes: list[Envelope]) -> None:
        """Envelopes each signed by its own agent (from a shard signing per agent, or injected
        by the driver): every signature is checked, whatever this shard's own policy."""
        self._lose()
        self.received += len(envelopes)
        self.calls += 1
        countdown = self._countdown(len(envelopes))
        try:
            for envelope in envelopes:
                if self.signing == "session":  # these hosts' inboxes trust batch proofs; check here
                    try:
                        envelope.check().verify()
                    except Rejected as exc:
                        self._reject(envelope, exc, countdown)
                        continue
                    self._enqueue(envelope, remote=True, authenticated=True, countdown=countdown)
                else:
                    self._enqueue(envelope, remote=True, countdown=countdown)
        finally:
            self._settle(countdown)

    def deliver_batch(self, session: str, envelopes: list[Envelope], signature: str, delegations: dict[str, str]) -> None:
        """A batch signed by another shard's session key: check the new delegations, the one
        batch signature, then hand each envelope on as authenticated (or refuse it)."""
        self._lose()
        self.received += len(envelopes)
        self.calls += 1
        countdown = self._countdown(len(envelopes))
        try:
            session_lower = session.lower()
            for sender, proof in delegations.items():
                if self._trusted.get(sender) == session_lower:
                    continue  # checked before
                try:
                    if recover_digest(delegation_digest(sender, session), proof) == sender.lower():
                        self._trusted[sender] = session_lower
                except ValueError:
                    pass
            try:
                digests = b"".join(e.check().signing_bytes() for e in envelopes)
                genuine = recover_digest(keccak256(digests), signature) == session_lower
            except Exception:  # noqa: BLE001 - a malformed batch is a forged one
                genuine = False
            for envelope in envelopes:
                if genuine and self._trusted.get(envelope.sender) == session_lower:
                    self._enqueue(envelope, remote=True, authenticated=True, countdown=countdown)
                else:
                    self.rejected_batches += 1
                    self._reject(envelope, BadSignature(f"no valid session signature or delegation for {envelope.sender}"), countdown)
        finally:
            self._settle(countdown)

    def _ship(self, dest: int, envelopes: list[Envelope]) -> Any:
        """One Ray call to shard ``dest``: agent-signed envelopes as they are, or one session
        signature over the batch (with the delegations ``dest`` has not seen yet)."""
        if self.signing == "agent":
            return self._peers.call(self._shard(dest), "deliver", envelopes)
        signature = self._session.sign_digest(keccak256(b"".join(e.signing_bytes() for e in envelopes)))
        # every batch carries its senders' delegations: batches may arrive in any order, and the
        # receiver checks each delegation only the first time it sees it
        delegations = {e.sender: self._delegations[e.sender] for e in envelopes}
        return self._peers.call(self._shard(dest), "deliver_batch", self._session.address, envelopes, signature, delegations)
