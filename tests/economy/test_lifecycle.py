"""The contract lifecycle on every ledger backend: each path balances, illegal steps change nothing."""

from __future__ import annotations

import pytest

from agora.agents.wallet import Wallet
from agora.chain import EscrowTerms, Ledger
from agora.economy import Contract, deal_id_for
from agora.economy.contract import deal_domain
from agora.economy.errors import BadContractSignature, DeadlinePassed, IllegalTransition
from agora.economy.lifecycle import Deal, DealState
from agora.economy.reputation import ReputationGraph
from tests.conftest import TOKEN

JOB = "0x" + "22" * 32
RESULT = "0x" + "33" * 32


def _deal(ledger: Ledger, people: dict, reputation: ReputationGraph | None = None, ttl: int = 600) -> Deal:
    for who in people.values():
        ledger.open_account(who)
    ledger.mint(people["buyer"].address, 100 * TOKEN)
    contract = Contract(
        deal_id=deal_id_for(people["buyer"].address, JOB, 0),
        buyer=people["buyer"].address,
        payees=[
            {"address": people["provider"].address, "role": "provider", "amount": 6_000},
            {"address": people["owner"].address, "role": "model_owner", "amount": 3_000},
            {"address": people["data"].address, "role": "data_owner", "amount": 1_000},
        ],
        deadline=ledger.now() + ttl,
        job_hash=JOB,
        arbiter=people["arbiter"].address,
        **deal_domain(ledger),
    )
    deal = Deal(contract, ledger, reputation)
    for who in ("buyer", "provider"):
        deal.sign(people[who].address, people[who].sign_typed_data(contract.typed_data()))
    return deal


def _w(ledger: Ledger, people: dict, who: str) -> Wallet:
    return Wallet(people[who], ledger)


def _balances(ledger: Ledger, people: dict) -> dict[str, int]:
    return {k: ledger.balance_of(p.address) for k, p in people.items()}


def test_the_whole_path_pays_the_delivered_cost_by_shares(ledger: Ledger, people: dict) -> None:
    reputation = ReputationGraph()
    deal = _deal(ledger, people, reputation)
    before = _balances(ledger, people)
    deal.fund(_w(ledger, people, "buyer"))
    assert ledger.escrowed_total() == 10_000
    deal.start(people["provider"].address)
    deal.deliver(people["provider"].address, RESULT, cost=8_000)
    deal.verify(people["buyer"].address, RESULT)
    deal.settle(_w(ledger, people, "buyer"))
    after = _balances(ledger, people)
    assert after["buyer"] - before["buyer"] == -8_000
    assert [after[k] - before[k] for k in ("provider", "owner", "data")] == [4_800, 2_400, 800]
    assert ledger.escrowed_total() == 0 and ledger.is_conserved()
    assert [s.state for s in deal.history] == list(DealState)[:7]
    assert all(s.tx for s in deal.history if s.state in (DealState.FUNDED, DealState.SETTLED))
    assert reputation.success_rate(people["provider"].address) == 1.0


def test_timeout_and_failure_refund_in_full(ledger: Ledger, people: dict) -> None:
    reputation = ReputationGraph()
    deal = _deal(ledger, people, reputation, ttl=100)
    before = _balances(ledger, people)
    deal.fund(_w(ledger, people, "buyer"))
    deal.start(people["provider"].address)
    with pytest.raises(IllegalTransition, match="has not passed"):
        deal.timeout(_w(ledger, people, "buyer"))
    ledger.advance_time(101)
    with pytest.raises(DeadlinePassed):
        deal.deliver(people["provider"].address, RESULT, cost=1)  # too late to deliver
    deal.timeout(_w(ledger, people, "buyer"))
    assert deal.state is DealState.REFUNDED and _balances(ledger, people) == before
    assert reputation.success_rate(people["provider"].address) == 0.0
    assert ledger.is_conserved()


def test_provider_failure_refunds_before_the_deadline(ledger: Ledger, people: dict) -> None:
    deal = _deal(ledger, people)
    before = _balances(ledger, people)
    deal.fund(_w(ledger, people, "buyer"))
    deal.fail(_w(ledger, people, "provider"))
    assert deal.state is DealState.REFUNDED and _balances(ledger, people) == before


def test_dispute_goes_to_the_arbiter(ledger: Ledger, people: dict) -> None:
    deal = _deal(ledger, people)
    before = _balances(ledger, people)
    deal.fund(_w(ledger, people, "buyer"))
    deal.start(people["provider"].address)
    deal.deliver(people["provider"].address, RESULT, cost=10_000)
    with pytest.raises(IllegalTransition, match="dispute instead"):
        deal.verify(people["buyer"].address, "0x" + "44" * 32)  # the checked result differs
    deal.dispute(_w(ledger, people, "buyer"), reason="embeddings do not match")
    deal.resolve(_w(ledger, people, "arbiter"), 5_000)  # the arbiter pays half
    assert deal.state is DealState.SETTLED
    assert _balances(ledger, people)["buyer"] - before["buyer"] == -5_000
    assert ledger.is_conserved()


def test_illegal_steps_change_nothing(ledger: Ledger, people: dict) -> None:
    deal = _deal(ledger, people)
    with pytest.raises(IllegalTransition, match="needs it"):
        deal.settle(_w(ledger, people, "buyer"))  # not yet funded
    with pytest.raises(IllegalTransition, match="not allowed"):
        deal.fund(_w(ledger, people, "stranger"))
    deal.fund(_w(ledger, people, "buyer"))
    before, history = _balances(ledger, people), list(deal.history)
    for bad in (
        lambda: deal.fund(_w(ledger, people, "buyer")),  # funded already
        lambda: deal.start(people["buyer"].address),  # only the provider starts
        lambda: deal.verify(people["buyer"].address, RESULT),  # nothing delivered yet
        lambda: deal.timeout(_w(ledger, people, "buyer")),  # deadline not passed
        lambda: deal.dispute(_w(ledger, people, "stranger")),
        lambda: deal.resolve(_w(ledger, people, "arbiter"), 1),  # not disputed
    ):
        with pytest.raises(IllegalTransition):
            bad()
    deal.start(people["provider"].address)
    with pytest.raises(IllegalTransition, match="cost"):
        deal.deliver(people["provider"].address, RESULT, cost=10_001)  # over the maximum
    assert _balances(ledger, people) == before and deal.history[: len(history)] == history
    assert deal.state is DealState.RUNNING


def test_signatures_are_checked(people: dict) -> None:
    from agora.chain import MemoryLedger

    ledger = MemoryLedger(arbiter=people["arbiter"].address, treasury=people["treasury"].address)
    deal = _deal(ledger, people)
    other = Deal(deal.contract, ledger)
    with pytest.raises(BadContractSignature):
        other.sign(people["buyer"].address, people["provider"].sign_typed_data(deal.contract.typed_data()))
    with pytest.raises(IllegalTransition, match="not allowed to sign"):
        other.sign(people["stranger"].address, people["stranger"].sign_typed_data(deal.contract.typed_data()))
    assert other.state is DealState.PROPOSED and not other.signatures


def test_the_other_party_follows_the_ledger(ledger: Ledger, people: dict) -> None:
    """The provider's own view of the deal learns of the funding and the payment from the ledger."""
    buyer_view = _deal(ledger, people)
    provider_view = Deal(buyer_view.contract, ledger)
    for who in ("buyer", "provider"):
        provider_view.sign(people[who].address, buyer_view.signatures[people[who].address])
    assert provider_view.sync() is DealState.SIGNED  # nothing on the ledger yet
    buyer_view.fund(_w(ledger, people, "buyer"))
    assert provider_view.sync() is DealState.FUNDED
    provider_view.start(people["provider"].address)
    provider_view.deliver(people["provider"].address, RESULT, cost=10_000)
    buyer_view.deliver(people["provider"].address, RESULT, cost=10_000)  # the buyer records the Deliver message
    buyer_view.verify(people["buyer"].address, RESULT)
    buyer_view.settle(_w(ledger, people, "buyer"))
    assert provider_view.sync() is DealState.SETTLED and provider_view.history[-1].note == "escrow released on the ledger"


def test_an_escrow_that_differs_from_the_contract_is_not_funding(ledger: Ledger, people: dict) -> None:
    deal = _deal(ledger, people)
    t = deal.contract.escrow_terms()
    cheap = EscrowTerms(escrow_id=t.escrow_id, payees=t.payees, shares_bps=t.shares_bps, amount=t.amount - 1, deadline=t.deadline, arbiter=t.arbiter)
    ledger.open_escrow(people["buyer"], cheap)
    with pytest.raises(IllegalTransition, match="does not match"):
        deal.sync()
    assert deal.state is DealState.SIGNED
