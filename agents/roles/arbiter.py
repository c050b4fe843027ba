"""The arbiter: rules on disputed deals by doing the work again, on the evidence on record only.

A buyer that finds a delivered result out of line (redundant execution put it in the minority,
or nobody agreed) disputes the escrow and sends the arbiter a ``Claim``; so does a provider whose
buyer never paid for a delivery (before the deadline would let the buyer take a refund for work
it received), or whose buyer disputed it. The arbiter re-runs the job on its own executor and
compares with the same tolerances verification uses (tasks.verify.agree), so a result that
differs only by batch shape or hardware is upheld: an honest provider is paid in full and never
slashed. A wrong result is refunded to the buyer, the provider's stake is slashed (half to the
buyer for its trouble, half to the treasury), and the failure goes into the one reputation graph.
Its key must be the ledger's arbiter.

What a claim says is judged only where it matches the record (issue 19: a buyer claimed the
provider had sent random vectors and had an honest provider slashed; a provider that never ran
the job claimed with a one-sentence job of its own and was paid). The claim carries the contract
with both parties' EIP-712 signatures; it must be the escrow's (deal id, buyer, payees, shares,
amount, deadline, on this chain and escrow contract), the job must hash to the contract's job
hash, and the result must be one the contract's provider signed a delivery receipt for. A claim
that fails any check is refused (``UnfoundedClaim``, or ``NotAParty`` from someone not a party),
counted, and changes nothing: the escrow stays frozen for the other party's claim. So a provider
cannot be paid for a result it never delivered under a receipt, and a buyer cannot have a
provider slashed for a result the provider never signed.
"""

from __future__ import annotations

import hashlib

from agora.agents.agent import Agent, Context, on_message
from agora.agents.deal_protocol import CLAIM_GRACE_S, Claim, Ruling, Undelivered, refuse
from agora.agents.errors import NotAParty, Refused, UnfoundedClaim
from agora.agents.identity import Identity
from agora.agents.roles.provider import run_paying_data_fee
from agora.chain import ChainError
from agora.chain.offchain import call_authorization_typed_data, recover
from agora.chain.types import EscrowState
from agora.economy.errors import EconomyError
from agora.tasks.errors import TasksError
from agora.tasks.jobs import JobResult
from agora.tasks.verify import agree


def _disputed(ctx: Context, escrow_id: str) -> EscrowState:
    try:
        escrow = ctx.ledger.escrow(escrow_id)
    except ChainError as exc:
        raise UnfoundedClaim(f"no escrow {escrow_id} on the ledger: {exc}") from None
    if escrow.status != "disputed":
        raise UnfoundedClaim(f"the escrow {escrow_id} is {escrow.status}, not disputed")
    return escrow


def _check_result(msg: Claim) -> None:
    content = hashlib.sha256(msg.result.content()).hexdigest()
    if content != msg.result.result_hash:
        raise UnfoundedClaim(f"the result's content hashes to {content}, not its declared {msg.result.result_hash}")


def check_call_claim(ctx: Context, sender: str, msg: Claim) -> EscrowState:
    """An escrowed call's claim (no deal contract): only from the escrow's server (payee 0), and
    only about inputs its caller signed for this escrow and this server."""
    escrow = _disputed(ctx, msg.deal_id)
    if sender.lower() != escrow.payees[0].lower() or msg.provider.lower() != sender.lower():
        raise NotAParty(f"{sender} is not the server paid by the escrowed call {msg.deal_id}")
    typed = call_authorization_typed_data(ctx.ledger.domains()["escrow"], msg.deal_id, sender, msg.job.model_hash, msg.job.task, list(msg.job.inputs or []))
    signer = recover(typed, msg.authorization) if msg.authorization else None
    if signer is None or signer.lower() != escrow.buyer.lower():
        raise UnfoundedClaim(f"the claimed model, task and inputs of {msg.deal_id} carry no authorization of its caller {escrow.buyer}")
    _check_result(msg)
    if msg.cost > escrow.amount:
        raise UnfoundedClaim(f"a cost of {msg.cost} is over the escrow's {escrow.amount}")
    return escrow


def check_claim(ctx: Context, sender: str, msg: Claim) -> EscrowState:
    """The disputed escrow ``msg`` is about, once every piece of its evidence matches the record;
    raises ``NotAParty`` or ``UnfoundedClaim`` naming the first thing that does not."""
    c = msg.contract
    if c is None:
        return check_call_claim(ctx, sender, msg)
    escrow = _signed_deal(ctx, sender, msg, (c.buyer, c.provider))
    if "0x" + msg.job.digest() != c.job_hash:
        raise UnfoundedClaim(f"the claimed job hashes to 0x{msg.job.digest()}, the contract names {c.job_hash}")
    _check_result(msg)
    try:
        c.verify_receipt(msg.result.result_hash, msg.receipt)
    except EconomyError as exc:
        raise UnfoundedClaim(f"the provider never signed the delivery of this result: {exc}") from None
    if msg.cost > escrow.amount:
        raise UnfoundedClaim(f"a cost of {msg.cost} is over the escrow's {escrow.amount}")
    return escrow


def _signed_deal(ctx: Context, sender: str, msg: Claim | Undelivered, parties: tuple[str, ...]) -> EscrowState:
    """The disputed escrow of ``msg``'s contract, once ``sender`` is one of ``parties`` and the
    contract is the escrow's, for this ledger, signed by both buyer and provider."""
    c = msg.contract
    assert c is not None
    if c.deal_id != msg.deal_id:
        raise UnfoundedClaim(f"the claim is about {msg.deal_id}, its contract about {c.deal_id}")
    if sender.lower() not in {p.lower() for p in parties}:
        raise NotAParty(f"{sender} is not the party of {msg.deal_id} that may claim this")
    escrow = _disputed(ctx, msg.deal_id)
    why = c.unlike(escrow, ctx.ledger)
    if why:
        raise UnfoundedClaim(why)
    try:
        c.verify_signature(msg.buyer_signature, c.buyer)
        c.verify_signature(msg.provider_signature, c.provider)
    except EconomyError as exc:
        raise UnfoundedClaim(f"the contract is not signed by both parties: {exc}") from None
    return escrow


def check_undelivered(ctx: Context, sender: str, msg: Undelivered, unruled: set[str]) -> EscrowState:
    """A buyer's claim that its provider froze the escrow and proved no delivery: only once the
    deadline and the grace after it passed (an honest provider claims before the deadline), and
    never for a deal whose valid claim the arbiter could not re-run (that one waits for a human)."""
    c = msg.contract
    escrow = _signed_deal(ctx, sender, msg, (c.buyer,))
    if ctx.ledger.now() < c.deadline + CLAIM_GRACE_S:
        raise UnfoundedClaim(f"{msg.deal_id}: the provider may claim until {c.deadline + CLAIM_GRACE_S}, it is {ctx.ledger.now()}")
    if msg.deal_id in unruled:
        raise UnfoundedClaim(f"{msg.deal_id} has a valid claim the arbiter could not re-run: it waits for a human")
    return escrow


class Arbiter(Agent):
    role = "arbiter"

    def __init__(self, name: str, identity: Identity, slash: int = 0) -> None:
        super().__init__(name, identity)
        self.slash_amount = slash
        self.rulings: dict[str, dict[str, object]] = {}
        self.refused: dict[str, int] = {}
        self.unruled: set[str] = set()  # deals with a valid claim whose re-run failed: frozen for a human

    def on_start(self, ctx: Context) -> None:
        ctx.wallet.open_account()
        ctx.registry.register_agent(self.address, self.name, self.role)

    @on_message(Claim)
    def claim(self, ctx: Context, sender: str, msg: Claim) -> None:
        try:
            escrow = check_claim(ctx, sender, msg)
        except Refused as exc:
            refuse(self, ctx, sender, exc)
            return
        provider = escrow.payees[0]  # the contract's provider (checked), or an escrowed call's server
        ctx.wallet.hold(msg.deal_id)  # a claim on record: the provider's bond stays until the ruling (Staking.vy)
        try:
            own, drew = self._rerun(ctx, msg)
            right = msg.result.job_id == msg.job.job_id and agree(msg.result, own)
        except (TasksError, ChainError) as exc:
            ctx.log.warning("arbiter could not re-run %s: %s", msg.deal_id, exc)
            self.unruled.add(msg.deal_id)
            return  # no ruling without evidence; the escrow stays frozen for a human
        slashed = paid = 0
        if right:  # a provider is paid what it asks (at most the escrow); a buyer that disputed right work pays the contract
            paid = msg.cost if sender.lower() == provider.lower() else escrow.amount
            ctx.wallet.resolve(msg.deal_id, paid)
            reason = "the result matches the arbiter's own run: paid"
        else:  # slash first: the open dispute is what keeps the bond from leaving (Staking.vy)
            slashed = min(self.slash_amount, ctx.ledger.stake_of(provider).stake)
            if slashed:  # the buyer's share: half the bond, plus the data fee the re-run drew from its escrow
                ctx.wallet.slash(provider, slashed, escrow.buyer, min(slashed, slashed // 2 + drew))
            ctx.wallet.resolve(msg.deal_id, 0)
            ctx.registry.rate(self.address, provider, False, max(escrow.amount, 1), "compute", deal_id=msg.deal_id)
            reason = "the result differs from the arbiter's own run: refunded and slashed"
        self._announce(ctx, msg.deal_id, escrow, paid, slashed, right, reason, msg.result if right else None)

    @staticmethod
    def _rerun(ctx: Context, msg: Claim) -> tuple[JobResult, int]:
        """Run the claim's job again; returns its result and what it drew. On a data owner's
        vault the re-run is a use: if the provider never drew the owner's line (it never ran the
        job there), the arbiter draws it (the escrow lets the resolver draw on a dispute) and
        collects the held result; a provider found cheating repays it from its bond."""
        return run_paying_data_fee(ctx.executor, ctx.wallet, msg.job, msg.deal_id)

    @on_message(Undelivered)
    def undelivered(self, ctx: Context, sender: str, msg: Undelivered) -> None:
        """The provider froze the escrow and, by the deadline and its grace, proved no delivery
        (no valid claim of its own): the buyer gets its escrow back. Nothing is slashed: there
        is no wrong result to judge, only a missing one."""
        try:
            escrow = check_undelivered(ctx, sender, msg, self.unruled)
        except Refused as exc:
            refuse(self, ctx, sender, exc)
            return
        ctx.wallet.resolve(msg.deal_id, 0)
        ctx.registry.rate(self.address, escrow.payees[0], False, max(escrow.amount, 1), "compute", deal_id=msg.deal_id)
        reason = "nothing was delivered under the provider's receipt by the deadline: refunded"
        self._announce(ctx, msg.deal_id, escrow, 0, 0, False, reason, None)

    def _announce(
        self,
        ctx: Context,
        deal_id: str,
        escrow: EscrowState,
        paid: int,
        slashed: int,
        upheld: bool,
        reason: str,
        result: JobResult | None,
    ) -> None:
        """Record a ruling and tell both parties; the buyer also gets the result it paid for."""
        self.rulings[deal_id] = {"provider": escrow.payees[0], "paid": paid, "slashed": slashed, "upheld": upheld}
        agents = ctx.registry.agents()
        for party in dict.fromkeys((escrow.buyer, escrow.payees[0])):
            if party in agents:  # a caller from outside the market (an HTTP client) reads the ruling on the ledger
                given = result if party == escrow.buyer else None  # what the buyer paid for, whatever it was sent
                ctx.send(party, Ruling(deal_id=deal_id, paid=paid, slashed=slashed, reason=reason, result=given))
