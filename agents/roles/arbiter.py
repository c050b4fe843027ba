"""The arbiter: rules on disputed deals by doing the work again.

A buyer that finds a delivered result out of line (redundant execution put it in the minority,
or nobody agreed) disputes the escrow and sends the arbiter a ``Claim`` with the job and the
result; so does a provider whose buyer never paid for a delivery (before the deadline would let
the buyer take a refund for work it received). The arbiter re-runs the job on its own executor and compares with the same tolerances
verification uses (tasks.verify.agree), so a result that differs only by batch shape or hardware
is upheld: an honest provider is paid in full and never slashed. A wrong result is refunded to the
buyer, the provider's stake is slashed (half to the buyer for its trouble, half to the treasury),
and the failure goes into the one reputation graph. Its key must be the ledger's arbiter.
"""

from __future__ import annotations

from agents.agent import Agent, Context, on_message
from agents.deal_protocol import Claim, Ruling
from agents.identity import Identity
from tasks.errors import TasksError
from tasks.verify import agree


class Arbiter(Agent):
    role = "arbiter"

    def __init__(self, name: str, identity: Identity, slash: int = 0) -> None:
        super().__init__(name, identity)
        self.slash_amount = slash
        self.rulings: dict[str, dict[str, object]] = {}

    def on_start(self, ctx: Context) -> None:
        ctx.wallet.open_account()
        ctx.registry.register_agent(self.address, self.name, self.role)

    @on_message(Claim)
    def claim(self, ctx: Context, sender: str, msg: Claim) -> None:
        escrow = ctx.ledger.escrow(msg.deal_id)
        parties = {escrow.buyer.lower(), escrow.payees[0].lower()}
        if escrow.status != "disputed" or sender.lower() not in parties or escrow.payees[0].lower() != msg.provider.lower():
            return  # only a party to a disputed escrow, about its provider
        if msg.cost > escrow.amount:
            return
        try:
            own = ctx.executor.run(msg.job, requester=self.address)
            right = msg.result.job_id == msg.job.job_id and agree(msg.result, own)
        except TasksError as exc:
            ctx.log.warning("arbiter could not re-run %s: %s", msg.deal_id, exc)
            return  # no ruling without evidence; the escrow stays frozen for a human
        slashed = 0
        if right:
            ctx.wallet.resolve(msg.deal_id, msg.cost)
            reason = "the result matches the arbiter's own run: paid"
        else:  # slash first: the open dispute is what keeps the bond from leaving (Staking.vy)
            slashed = min(self.slash_amount, ctx.ledger.stake_of(msg.provider).stake)
            if slashed:
                ctx.wallet.slash(msg.provider, slashed, escrow.buyer, slashed // 2)
            ctx.wallet.resolve(msg.deal_id, 0)
            ctx.registry.rate(self.address, msg.provider, False, max(escrow.amount, 1), "compute")
            reason = "the result differs from the arbiter's own run: refunded and slashed"
        paid = msg.cost if right else 0
        self.rulings[msg.deal_id] = {"provider": msg.provider, "paid": paid, "slashed": slashed, "upheld": right}
        agents = ctx.registry.agents()
        for party in dict.fromkeys((escrow.buyer, msg.provider)):
            if party in agents:  # a caller from outside the market (an HTTP client) reads the ruling on the ledger
                ctx.send(party, Ruling(deal_id=msg.deal_id, paid=paid, slashed=slashed, reason=reason))
