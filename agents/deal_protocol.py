"""The inference-deal protocol: the messages a buyer and providers exchange for one job.

    buyer                              provider
      CallForProposals  ─────────────▶
                        ◀─────────────  Propose | Refuse
      AwardContract (buyer-signed) ──▶              (RejectProposal to the others)
                        ◀─────────────  AcceptContract (countersigned) | DeclineContract
      [buyer locks the price in escrow]
      EscrowFunded      ─────────────▶
                                        [runs the job on its executor]
                        ◀─────────────  Deliver (result + hash) | ReportFailure (refunded)
      [buyer verifies, releases the split]
      Settled           ─────────────▶  (also to the model and data owners)

Timers a buyer sets on itself: ProposalsDue (stop waiting for bids), DeadlinePassed (refund).
"""

from __future__ import annotations

from pydantic import Field

from agents.messages import Message
from economy.contract import Contract
from tasks.jobs import JobResult, JobSpec


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
    result: JobResult


class ReportFailure(Message):
    reason: str
    refund_tx: str = ""


class Settled(Message):
    paid: int
    tx_hash: str


class ProposalsDue(Message):
    """Timer: the buyer stops waiting for proposals."""


class DeadlinePassed(Message):
    """Timer: the contract deadline is here; refund if nothing was delivered."""


class PaymentDue(Message):
    """Timer: a provider's delivered deal is close to its deadline; claim if still unpaid."""


class Claim(Message):
    """Buyer or provider to arbiter: the delivered result of a disputed deal, with the job it
    answers (a buyer disputing the work, or a provider the buyer never paid)."""

    job: JobSpec
    result: JobResult
    provider: str
    cost: int = Field(ge=0)


class Ruling(Message):
    """Arbiter to both parties: what the disputed deal paid, and what the provider lost."""

    paid: int = Field(ge=0)
    slashed: int = Field(ge=0)
    reason: str


class JobDone(Message):
    """A provider to itself: how the job it started off its mailbox ended."""

    result: JobResult | None = None
    error: str = ""
