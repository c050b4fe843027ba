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

from agents.agent import Agent, Context, on_message
from agents.deal_protocol import Claim, Ruling, refuse
from agents.errors import NotAParty, Refused, UnfoundedClaim
from agents.identity import Identity
from chain import ChainError
from chain.offchain import call_authorization_typed_data, recover
from chain.types import EscrowState
from economy.contract import deal_domain
from economy.errors import EconomyError
from tasks.errors import TasksError
from tasks.verify import agree


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
    typed = call_authorization_typed_data(ctx.ledger.domains()["escrow"], msg.deal_id, sender, list(msg.job.inputs or []))
    signer = recover(typed, msg.authorization) if msg.authorization else None
    if signer is None or signer.lower() != escrow.buyer.lower():
        raise UnfoundedClaim(f"the claimed inputs of {msg.deal_id} carry no authorization of its caller {escrow.buyer}")
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
    if c.deal_id != msg.deal_id:
        raise UnfoundedClaim(f"the claim is about {msg.deal_id}, its contract about {c.deal_id}")
    if sender.lower() not in (c.buyer.lower(), c.provider.lower()):
        raise NotAParty(f"{sender} is neither the buyer nor the provider of {msg.deal_id}")
    escrow = _disputed(ctx, msg.deal_id)
    terms = c.escrow_terms()
    if escrow.buyer.lower() != c.buyer.lower() or (escrow.amount, escrow.payees, escrow.shares_bps, escrow.deadline) != (terms.amount, terms.payees, terms.shares_bps, terms.deadline):
        raise UnfoundedClaim(f"the contract's terms are not the escrow {msg.deal_id}'s on the ledger")
    here = deal_domain(ctx.ledger)
    if (c.chain_id, c.escrow_contract) != (here["chain_id"], here["escrow_contract"]):
        raise UnfoundedClaim(f"the contract is signed for chain {c.chain_id} / {c.escrow_contract}, not this ledger's")
    try:
        c.verify_signature(msg.buyer_signature, c.buyer)
        c.verify_signature(msg.provider_signature, c.provider)
    except EconomyError as exc:
        raise UnfoundedClaim(f"the contract is not signed by both parties: {exc}") from None
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


class Arbiter(Agent):
    role = "arbiter"

    def __init__(self, name: str, identity: Identity, slash: int = 0) -> None:
        super().__init__(name, identity)
        self.slash_amount = slash
        self.rulings: dict[str, dict[str, object]] = {}
        self.refused: dict[str, int] = {}

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
        try:
            own = ctx.executor.run(msg.job, requester=self.address)
            right = msg.result.job_id == msg.job.job_id and agree(msg.result, own)
        except TasksError as exc:
            ctx.log.warning("arbiter could not re-run %s: %s", msg.deal_id, exc)
            return  # no ruling without evidence; the escrow stays frozen for a human
        slashed = paid = 0
        if right:  # a provider is paid what it asks (at most the escrow); a buyer that disputed right work pays the contract
            paid = msg.cost if sender.lower() == provider.lower() else escrow.amount
            ctx.wallet.resolve(msg.deal_id, paid)
            reason = "the result matches the arbiter's own run: paid"
        else:  # slash first: the open dispute is what keeps the bond from leaving (Staking.vy)
            slashed = min(self.slash_amount, ctx.ledger.stake_of(provider).stake)
            if slashed:
                ctx.wallet.slash(provider, slashed, escrow.buyer, slashed // 2)
            ctx.wallet.resolve(msg.deal_id, 0)
            ctx.registry.rate(self.address, provider, False, max(escrow.amount, 1), "compute")
            reason = "the result differs from the arbiter's own run: refunded and slashed"
        self.rulings[msg.deal_id] = {"provider": provider, "paid": paid, "slashed": slashed, "upheld": right}
        agents = ctx.registry.agents()
        for party in dict.fromkeys((escrow.buyer, provider)):
            if party in agents:  # a caller from outside the market (an HTTP client) reads the ruling on the ledger
                upheld = msg.result if right and party == escrow.buyer else None  # what the buyer paid for, whatever it was sent
                ctx.send(party, Ruling(deal_id=msg.deal_id, paid=paid, slashed=slashed, reason=reason, result=upheld))
