"""The buyer's checks beyond the hash and its side of disputes: spot-checking a delivery on its own
executor, freezing a deal for the arbiter, judging the replicas of a
redundant job, and hearing the ruling. A part of :class:`~agora.agents.roles.buyer.Buyer` (its
handlers are the buyer's), kept apart so each file holds one concern."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agora.agents.agent import Context, on_message
from agora.agents.deal_protocol import Claim, Ruling, Settled
from agora.agents.roles.buyer_deal import BuyerDeal, DealRecord
from agora.chain import ChainError
from agora.economy.lifecycle import FINAL, Deal, DealState
from agora.tasks.errors import TasksError
from agora.tasks.jobs import JobResult
from agora.tasks.verify import redundant, spot_check, verify_result


class Disputes:
    """Dispute handling for a buyer (mixed into :class:`~agora.agents.roles.buyer.Buyer`)."""

    address: str
    _deals: dict[str, BuyerDeal]

    # the buyer's own, used here (annotations only: nothing is defined twice)
    _lifecycle: Callable[[str], Deal]
    _from: Callable[[Context, str, str, str], DealRecord | None]
    _pay: Callable[[Context, DealRecord, JobResult], None]
    _end: Callable[[float, DealRecord, Any, str], DealRecord]
    _request_of: Callable[[str], Any]
    _rate: Callable[[Context, DealRecord, bool], None]

    def _settled(self, ctx: Context, record: DealRecord) -> None:
        """The buyer's own release landed: the deal ends settled, rated, and its payees told."""
        assert record.contract is not None
        self._deals[record.deal_id].settling = None
        receipt = self._lifecycle(record.deal_id).receipts[-1]
        record.receipts.append(receipt)
        self._end(ctx.now(), record, "settled", "")
        self._rate(ctx, record, True)  # verified
        for payee in {p.address for p in record.contract.payees}:
            ctx.send(payee, Settled(deal_id=record.deal_id, paid=record.paid, tx_hash=receipt.tx_hash))

    def _release_recovered(self, ctx: Context, record: DealRecord, deal: Deal, state: DealState) -> bool:
        """At the deadline, a release of the buyer's own that was under way when it crashed
        (written ahead in ``_pay``): landed, the deal ends settled as billed; never sent, it is
        sent now (a buyer may release after the deadline). True when that ended the deal."""
        kept = self._deals[record.deal_id]
        if kept.settling is None:
            return False
        if state is DealState.SETTLED:
            kept.settling = None
            self._end(ctx.now(), record, "settled", "released before a restart")
            self._rate(ctx, record, True)  # verified
            return True
        if state is DealState.VERIFIED:
            try:
                deal.settle(ctx.wallet, amounts=kept.settling)
            except ChainError as exc:
                ctx.log.warning("release of %s after a restart failed: %s", record.deal_id, exc)
            else:
                self._settled(ctx, record)
                return True
        kept.settling, kept.result, record.paid, record.bill = None, None, 0, []  # not paid after all
        return False

    def _spot_checked(self, ctx: Context, record: DealRecord, result: JobResult) -> bool:
        """Re-run a few randomly chosen rows on the buyer's own executor (the provider cannot know
        which) and compare them with the delivered ones; True when there is nothing to check."""
        rows = self._request_of(record.deal_id).spot_check
        if not rows or record.job is None or record.job.inputs is None or ctx.executor is None:
            return True
        try:
            ok, checked = spot_check(result, record.job, lambda spec: ctx.executor.run(spec, requester=self.address), ctx.rng, rows)
        except TasksError as exc:
            ctx.log.warning("spot check of %s could not run: %s", record.deal_id, exc)
            return True  # no evidence either way: the result already passed verify_result
        record.reason = f"spot-checked rows {checked}"
        return ok

    def _dispute(self, ctx: Context, record: DealRecord, result: JobResult, why: str) -> None:
        """Freeze the deal's escrow and put the result before the arbiter, who re-runs the job."""
        assert record.contract is not None and record.job is not None
        self._lifecycle(record.deal_id).dispute(ctx.wallet, why)
        record.status, record.reason = "disputed", why
        if ctx.ledger.arbiter in ctx.registry.agents():  # the ledger's arbiter, never one that calls itself so
            c, signatures = record.contract, self._lifecycle(record.deal_id).signatures
            claim = Claim(
                deal_id=record.deal_id,
                contract=c,
                buyer_signature=signatures[c.buyer],
                provider_signature=signatures[c.provider],
                job=record.job,
                result=result,
                receipt=record.receipt,
                cost=c.max_amount,
            )
            ctx.send(ctx.ledger.arbiter, claim)

    # -- redundancy: compare the replicas, pay the majority, take the rest to the arbiter -----
    def _judge(self, ctx: Context, group: str) -> None:
        deals = [self._deals[i] for i in self._deals[group].replicas]
        if any(not d.record.done and d.delivered is None for d in deals):
            return  # a replica is still running (its deadline ends the wait)
        results = {d.record.contract.provider: d.delivered for d in deals if d.delivered is not None and d.record.contract is not None}
        verdict = redundant(results)
        for d in deals:
            if d.delivered is None:
                continue
            record, result, d.delivered = d.record, d.delivered, None
            assert record.contract is not None
            if record.contract.provider in verdict.agreed:
                self._pay(ctx, record, result)
                continue
            # in the minority, or nobody agreed: frozen for the arbiter, who re-runs the job
            self._dispute(ctx, record, result, "outvoted by the other replicas" if verdict.verified else "no majority among the replicas")

    @on_message(Ruling)
    def ruled(self, ctx: Context, sender: str, msg: Ruling) -> None:
        """The arbiter ruled on a dispute of either party's. What it did is read on the ledger; a
        result it paid for comes with the ruling and is kept once it verifies, so a provider that
        delivered one thing and claimed with another still hands over what it was paid for."""
        record = self._from(ctx, sender, msg.deal_id, "arbiter")
        if record is None or record.status not in ("funded", "disputed"):
            return
        state = self._lifecycle(msg.deal_id).sync()  # the ledger says what the ruling did
        if state not in FINAL:
            return
        record.paid = msg.paid if state is DealState.SETTLED else 0
        if state is DealState.SETTLED and msg.result is not None and record.job is not None:
            try:
                verify_result(msg.result, record.job)
                self._deals[record.deal_id].result = msg.result
                record.result_hash, record.result_shape = msg.result.result_hash, msg.result.shape
            except TasksError as exc:
                ctx.log.warning("the result ruled on for %s does not verify: %s", record.deal_id, exc)
        self._end(ctx.now(), record, "settled" if state is DealState.SETTLED else "refunded", f"arbiter: {msg.reason}")
