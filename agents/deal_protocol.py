"""The inference-deal protocol: the messages a buyer and providers exchange for one job.

    buyer                              provider
      CallForProposals  ─────────────▶
                        ◀─────────────  Propose | Refuse
      AwardContract (buyer-signed) ──▶              (RejectProposal to the others)
                        ◀─────────────  AcceptContract (countersigned) | DeclineContract
      [buyer locks the price in escrow]
      EscrowFunded      ─────────────▶
                                        [runs the job on its executor]
                        ◀─────────────  Deliver (result + signed receipt) | ReportFailure (refunded)
      [buyer verifies, releases the split]
      Settled           ─────────────▶  (also to the model and data owners)
      [a dispute: either party]  Claim (signed contract, job, result, receipt) ──▶ arbiter ── Ruling ──▶ both

Timers a buyer sets on itself: ProposalsDue (stop waiting for bids), DeadlineDue (the contract's deadline came: refund if undelivered).

Every message about a deal is the business of its parties only (issue 19): a call for proposals
only under a deal id that begins with its sender's address (the id is the buyer's, ``owned_id``),
every later message only from the party the protocol expects at that step, a ruling only from the
ledger's arbiter. Anything else is refused with ``refuse``: typed (agents.errors.Refused), counted
on the agent (``agent.refused``, per reason), logged once per sender and reason, and nothing
changes. A claim carries its own evidence, checked by the arbiter against what both parties
signed and what the ledger holds, never taken on the claimant's word.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from agora.agents.errors import NotAParty, Refused
from agora.agents.messages import Message
from agora.economy.contract import Contract
from agora.tasks.jobs import JobResult, JobSpec

_LOGGED_CAP = 10_000  # (sender, reason) pairs logged per agent: a flood of strangers stays one line each, bounded


def refuse(agent: Any, ctx: Any, sender: str, error: Refused) -> None:
    """Count ``error`` on ``agent`` (``agent.refused``: reason -> count) and log it the first
    time this sender is refused for this reason. A handler calls it and returns: the message
    changes nothing. Kept on the agent (not raised to the host, which counts handler *failures*):
    a refusal is the agent working as meant."""
    reason = type(error).__name__
    counts: dict[str, int] = vars(agent).setdefault("refused", {})
    counts[reason] = counts.get(reason, 0) + 1
    logged: set[tuple[str, str]] = vars(agent).setdefault("_refusals_logged", set())
    if (sender, reason) not in logged and len(logged) < _LOGGED_CAP:
        logged.add((sender, reason))
        ctx.log.warning("%s refused a message from %s: %s: %s", getattr(agent, "name", "?"), sender, reason, error)


def from_self(agent: Any, ctx: Any, sender: str) -> bool:
    """Whether a timer-like message came from ``agent`` itself; from anyone else it is refused
    and counted (the runtime's inbox refuses internal types already; this covers the rest)."""
    if sender == agent.address:
        return True
    refuse(agent, ctx, sender, NotAParty(f"{sender} is not {agent.address}: its timers are its own"))
    return False


class CallForProposals(Message):
    job: JobSpec
    job_hash: str
    compute_budget: int  # the most the buyer will pay for compute, after posted model/data fees
    deadline: int  # ledger time by which the result must be delivered


class Propose(Message):
    price: int = Field(ge=0)
    free_gpu_memory_mb: int | None = Field(default=None, ge=0)


class Refuse(Message):
    reason: str


class AwardContract(Message):
    contract: Contract
    buyer_signature: str
    call_id: str | None = None  # a redundant job's extra deal: the call the provider proposed on


class RejectProposal(Message):
    reason: str = "another bid won"


class AcceptContract(Message):
    provider_signature: str


class DeclineContract(Message):
    reason: str


class EscrowFunded(Message):
    tx_hash: str


class Deliver(Message):
    """The result, and the provider's EIP-712 delivery receipt over (deal id, result hash)
    (``Contract.receipt_typed_data``): the buyer keeps it, and it is what lets either party put
    this result before the arbiter."""

    result: JobResult
    receipt: str


class ReportFailure(Message):
    reason: str
    refund_tx: str = ""


class Settled(Message):
    paid: int
    tx_hash: str


class ProposalsDue(Message):
    """Timer: the buyer stops waiting for proposals."""

    internal = True  # the buyer's own timer: refused at the inbox from anyone else


class DeadlineDue(Message):
    """Timer: the contract deadline is here; refund if nothing was delivered."""

    internal = True


class PaymentDue(Message):
    """Timer: a provider's delivered deal is close to its deadline; claim if still unpaid."""

    internal = True


class Claim(Message):
    """Buyer or provider to arbiter: the delivered result of a disputed deal (a buyer disputing
    the work, or a provider the buyer never paid), with its evidence: the contract both parties
    signed (which names the job's hash and matches the escrow), the job, the result, and the
    provider's delivery receipt for that result. ``cost``: what a provider asks (at most the
    escrow); a buyer's claim about a result the arbiter finds right pays the contract in full.

    An escrowed call (agents/roles/serving.py) has no deal contract: its server claims with
    ``authorization``, the caller's EIP-712 signature over the escrow, the server and the job's
    inputs (chain.offchain.call_authorization_typed_data), which binds the job to the escrow."""

    job: JobSpec
    result: JobResult
    cost: int = Field(ge=0)
    contract: Contract | None = None
    buyer_signature: str = ""
    provider_signature: str = ""
    receipt: str = ""
    authorization: str = ""
    provider: str = ""  # an escrowed call's server (a deal's provider is its contract's)


CLAIM_GRACE_S = 60  # after a deadline: how long a frozen deal waits for its provider's claim before the buyer's


class Undelivered(Message):
    """Buyer to arbiter: the provider froze this deal's escrow and proved no delivery by the
    deadline (its claim, if any, was refused); the contract both signed shows what it was."""

    contract: Contract
    buyer_signature: str
    provider_signature: str


class Ruling(Message):
    """Arbiter to both parties: what the disputed deal paid, and what the provider lost."""

    paid: int = Field(ge=0)
    slashed: int = Field(ge=0)
    reason: str
    result: JobResult | None = None  # to the buyer: the result the arbiter upheld and paid for


class JobDone(Message):
    """A provider to itself: how the job it started off its mailbox ended."""

    internal = True

    result: JobResult | None = None
    error: str = ""
