"""Errors of the agents package.

AgentsError
 ├── InvalidOffer (ValueError)          an offer with a bad price, hash or resource
 ├── UnknownOffer (KeyError)            no model, dataset, provider or service under that key
 ├── Rejected                           an envelope the receiver refused (logged; the agent runs on)
 │    ├── BadSignature (PermissionError)   not signed by the sender it names
 │    ├── BadEnvelope (ValueError)         a header field of the wrong type
 │    ├── UnknownMessage (ValueError)      a schema digest no handler knows
 │    ├── ReplayedMessage (PermissionError) a nonce this receiver has already seen from that sender
 │    ├── ExpiredMessage (TimeoutError)    delivered after its expiry
 │    ├── PayloadTooLarge (ValueError)     a payload over the receiver's cap
 │    ├── RateLimited (PermissionError)    a sender over its rate quota
 │    └── InternalMessage (PermissionError) an agent's own timer type from anyone else (agents.inbox)
 ├── Refused                            a message a handler refused (counted per reason in ``agent.refused``)
 │    ├── NotAParty (PermissionError)      about a deal, from someone not the party expected at that step
 │    │    └── ForeignDeal                 a call for proposals under a deal id that is not its sender's
 │    └── UnfoundedClaim (ValueError)      a claim whose contract, job or result is not the deal's on record
 ├── RegistryRefused (PermissionError)  a registry write not in the writer's own name (agents.registry):
 │                                      NotYourName, RoleNotYours, ListingTaken, RatingRefused
 ├── UnsafeStateFolder (PermissionError) a state folder others may write (agents.snapshot)
 ├── UndeclaredReply (TypeError)        a handler replied with a type its protocol did not declare
 ├── KeystoreError (ValueError)         a keystore file or seed phrase that cannot give a key
 └── RuntimeFailure                     the runtime could not deliver or host an agent
"""

from __future__ import annotations


class AgentsError(Exception):
    """Root of every error raised by the agents package."""


class InvalidOffer(AgentsError, ValueError):
    """An offer failed validation; the message names the field."""


class UnknownOffer(AgentsError, KeyError):
    """Nothing is registered under that key."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Rejected(AgentsError):
    """Base of every reason a receiver refuses an envelope before any handler sees it."""


class BadSignature(Rejected, PermissionError):
    """An envelope was not signed by the sender it names."""


class BadEnvelope(Rejected, ValueError):
    """An envelope header field has the wrong type (it came from another process)."""


class UnknownMessage(Rejected, ValueError):
    """A message type (schema digest) that the receiving agent does not speak."""


class ReplayedMessage(Rejected, PermissionError):
    """A nonce the receiver has already accepted from that sender (or one too old to tell)."""


class ExpiredMessage(Rejected, TimeoutError):
    """An envelope delivered after its expiry time."""


class PayloadTooLarge(Rejected, ValueError):
    """A payload larger than the receiver accepts."""


class RateLimited(Rejected, PermissionError):
    """A sender that exceeded the receiver's per-sender rate quota."""


class Refused(AgentsError):
    """Base of every reason a handler refuses a message that passed the inbox: the envelope was
    signed by its sender, but what it claims is not that sender's to claim. The agent counts it
    (``agents.deal_protocol.refuse``), changes nothing and runs on."""


class NotAParty(Refused, PermissionError):
    """A message about a deal from someone the protocol does not expect at that step (not the
    deal's buyer, provider or the ledger's arbiter, as the step requires)."""


class ForeignDeal(NotAParty):
    """A call for proposals under a deal id that does not begin with its sender's address: a
    deal id belongs to its buyer, and a stranger's call would overwrite that buyer's job."""


class UnfoundedClaim(Refused, ValueError):
    """A claim before the arbiter whose evidence is not the deal's on record: a contract not
    signed by both parties or unlike the escrow, a job whose hash is not the contract's, a result
    the provider never signed a delivery receipt for."""


class UndeclaredReply(AgentsError, TypeError):
    """A handler sent its sender a message type its protocol does not declare as a reply."""


class KeystoreError(AgentsError, ValueError):
    """A keystore that cannot be decrypted, or a seed phrase that is not valid."""


class RuntimeFailure(AgentsError, RuntimeError):
    """The runtime failed to host an agent or deliver a message."""


class InjectedFault(RuntimeFailure):
    """A failure a chaos run caused on purpose (a delivery dropped before it was accepted)."""
