"""Netted batch settlement, the same on every backend: only what buyers signed is paid, once."""

from __future__ import annotations

import pytest

from agora.chain import AlreadySettled, BadSignature, DeadlineNotReached, EpochBuilder, InsufficientFunds, InvalidAmount, InvalidArgument, Ledger
from tests.conftest import TOKEN


def _fund(ledger: Ledger, people: dict, deposit: int = 10 * TOKEN) -> None:
    for who in people.values():
        ledger.open_account(who)
    for name in ("buyer", "arbiter"):  # two buyers
        ledger.mint(people[name].address, 100 * TOKEN)
        ledger.deposit(people[name], deposit)


def _signer(people: dict):
    by_address = {p.address: p for p in people.values()}
    return lambda buyer, typed: by_address[buyer].sign_typed_data(typed)


def _epoch(ledger: Ledger, people: dict, epoch: int = 1) -> EpochBuilder:
    b = EpochBuilder(epoch, ledger.domains()["batch"])
    p, o, d = (people[k].address for k in ("provider", "owner", "data"))
    for _ in range(5):  # five trades by one buyer, three by the other, netted per payee
        b.add(people["buyer"].address, {p: 500, o: 300, d: 200})
    for _ in range(3):
        b.add(people["arbiter"].address, {p: 1000, o: 7})
    return b


def test_epoch_pays_net_amounts_in_one_operation(ledger: Ledger, people: dict) -> None:
    _fund(ledger, people)
    batch = _epoch(ledger, people).build(_signer(people))
    assert len(batch.payees) == 3 and sum(batch.counts) == 5  # 3 lines + 2 lines after netting
    ledger.settle_batch(people["stranger"], batch)  # anyone may submit
    assert ledger.balance_of(people["provider"].address) == 5 * 500 + 3 * 1000
    assert ledger.balance_of(people["owner"].address) == 5 * 300 + 3 * 7
    assert ledger.balance_of(people["data"].address) == 5 * 200
    assert ledger.batch_account(people["buyer"].address).deposit == 10 * TOKEN - 5000
    assert ledger.batch_account(people["buyer"].address).last_epoch == 1
    assert ledger.is_conserved()


def test_an_epoch_settles_once_per_buyer(ledger: Ledger, people: dict) -> None:
    _fund(ledger, people)
    batch = _epoch(ledger, people).build(_signer(people))
    ledger.settle_batch(people["stranger"], batch)
    with pytest.raises(AlreadySettled):
        ledger.settle_batch(people["stranger"], batch)  # a retry never pays twice
    again = _epoch(ledger, people, epoch=1).build(_signer(people))
    with pytest.raises(AlreadySettled):
        ledger.settle_batch(people["stranger"], again)
    ledger.settle_batch(people["stranger"], _epoch(ledger, people, epoch=2).build(_signer(people)))
    assert ledger.balance_of(people["provider"].address) == 2 * (5 * 500 + 3 * 1000)
    assert ledger.batch_account(people["buyer"].address).last_epoch == 2


def test_nothing_is_paid_that_a_buyer_did_not_sign(ledger: Ledger, people: dict) -> None:
    _fund(ledger, people)
    batch = _epoch(ledger, people).build(_signer(people))
    inflated = batch.model_copy(update={"lines": [batch.lines[0] + 1, *batch.lines[1:]]})
    with pytest.raises(BadSignature):
        ledger.settle_batch(people["stranger"], inflated)
    forged = batch.model_copy(update={"signatures": [batch.signatures[1], batch.signatures[1]]})
    with pytest.raises(BadSignature):
        ledger.settle_batch(people["stranger"], forged)
    other_payee = batch.model_copy(update={"payees": [people["stranger"].address, *batch.payees[1:]]})
    with pytest.raises(BadSignature):
        ledger.settle_batch(people["stranger"], other_payee)
    with pytest.raises(InvalidArgument):
        ledger.settle_batch(people["stranger"], batch.model_copy(update={"counts": [1, 1]}))
    assert ledger.balance_of(people["provider"].address) == 0 and ledger.is_conserved()


def test_deposit_limits_and_withdrawal_delay(ledger: Ledger, people: dict) -> None:
    _fund(ledger, people, deposit=1000)
    with pytest.raises(InsufficientFunds):
        ledger.settle_batch(people["stranger"], _epoch(ledger, people).build(_signer(people)))
    with pytest.raises(DeadlineNotReached):
        ledger.withdraw(people["buyer"], 10)
    with pytest.raises(InsufficientFunds):
        ledger.request_withdrawal(people["buyer"], 1001)
    ledger.request_withdrawal(people["buyer"], 1000)
    with pytest.raises(DeadlineNotReached):
        ledger.withdraw(people["buyer"], 10)
    ledger.advance_time(3601)
    with pytest.raises(InvalidAmount, match="over request"):
        ledger.withdraw(people["buyer"], 1001)
    ledger.withdraw(people["buyer"], 1000)
    assert ledger.balance_of(people["buyer"].address) == 100 * TOKEN
    assert ledger.batch_account(people["buyer"].address).deposit == 0 and ledger.is_conserved()


def test_deposit_needs_no_approval(ledger: Ledger, people: dict) -> None:
    """Deposits go through transferAndCall: one transaction, no allowance, no opened account."""
    buyer = people["stranger"]
    ledger.mint(buyer.address, 50)
    ledger.fund_gas(buyer.address)
    ledger.deposit(buyer, 30)
    assert ledger.batch_account(buyer.address).deposit == 30
    assert ledger.balance_of(buyer.address) == 20
    with pytest.raises(InsufficientFunds):
        ledger.deposit(buyer, 21)
    with pytest.raises(InvalidAmount):
        ledger.deposit(buyer, 0)
    assert ledger.is_conserved()
