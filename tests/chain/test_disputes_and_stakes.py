"""Disputes and stakes, the same on every backend: the arbiter set at deployment rules, slashed
stake goes to the harmed buyer and the treasury, and no token is destroyed or stranded."""

from __future__ import annotations

import pytest

from agora.chain import (
    AlreadySettled,
    DeadlineNotReached,
    Disputed,
    EscrowTerms,
    InsufficientFunds,
    InvalidAmount,
    InvalidArgument,
    Ledger,
    Unauthorized,
    split,
)
from tests.conftest import TOKEN, owned

ESCROW_ID = owned("buyer", "dispute")


def _deal(ledger: Ledger, people: dict) -> EscrowTerms:
    for who in people.values():
        ledger.open_account(who)
    ledger.mint(people["buyer"].address, 100 * TOKEN)
    terms = EscrowTerms(
        escrow_id=ESCROW_ID,
        payees=[people["provider"].address, people["owner"].address],
        shares_bps=[7000, 3000],
        amount=10 * TOKEN,
        deadline=ledger.now() + 600,
    )
    ledger.open_escrow(people["buyer"], terms)
    return terms


def test_a_disputed_escrow_waits_for_the_arbiter(ledger: Ledger, people: dict) -> None:
    _deal(ledger, people)
    with pytest.raises(Unauthorized):
        ledger.dispute(people["stranger"], ESCROW_ID)
    ledger.dispute(people["buyer"], ESCROW_ID)
    assert ledger.escrow(ESCROW_ID).status == "disputed"
    with pytest.raises(Disputed):
        ledger.release(people["buyer"], ESCROW_ID, 1)
    with pytest.raises(Disputed):
        ledger.refund(people["provider"], ESCROW_ID)
    ledger.advance_time(601)
    with pytest.raises(Disputed):
        ledger.refund(people["buyer"], ESCROW_ID)  # not even after the deadline
    with pytest.raises(Unauthorized):
        ledger.resolve(people["buyer"], ESCROW_ID, 0)
    with pytest.raises(InvalidAmount):
        ledger.resolve(people["arbiter"], ESCROW_ID, 10 * TOKEN + 1)
    ledger.resolve(people["arbiter"], ESCROW_ID, 4 * TOKEN)  # the arbiter finds 40% was earned
    assert ledger.escrow(ESCROW_ID).status == "released"
    provider, owner = split(4 * TOKEN, [7000, 3000])
    assert ledger.balance_of(people["provider"].address) == provider
    assert ledger.balance_of(people["owner"].address) == owner
    assert ledger.balance_of(people["buyer"].address) == 96 * TOKEN
    with pytest.raises(AlreadySettled):
        ledger.dispute(people["provider"], ESCROW_ID)
    assert ledger.is_conserved()


def test_resolving_to_zero_refunds_and_only_disputes_are_resolved(ledger: Ledger, people: dict) -> None:
    _deal(ledger, people)
    with pytest.raises(InvalidArgument, match="not disputed"):
        ledger.resolve(people["arbiter"], ESCROW_ID, 0)
    ledger.dispute(people["provider"], ESCROW_ID)
    ledger.resolve(people["arbiter"], ESCROW_ID, 0)
    assert ledger.escrow(ESCROW_ID).status == "refunded"
    assert ledger.balance_of(people["buyer"].address) == 100 * TOKEN


def test_stake_unbonds_after_the_delay(ledger: Ledger, people: dict) -> None:
    provider = people["provider"]
    ledger.mint(provider.address, 50)
    ledger.fund_gas(provider.address)
    ledger.stake(provider, 40)  # one transaction, no approval
    assert ledger.stake_of(provider.address).stake == 40 and ledger.balance_of(provider.address) == 10
    with pytest.raises(InsufficientFunds):
        ledger.stake(provider, 11)
    with pytest.raises(DeadlineNotReached):
        ledger.unstake(provider, 1)
    with pytest.raises(InsufficientFunds):
        ledger.request_unstake(provider, 41)
    ledger.request_unstake(provider, 40)
    with pytest.raises(DeadlineNotReached):
        ledger.unstake(provider, 1)
    ledger.advance_time(86_401)
    with pytest.raises(InvalidAmount, match="over request"):
        ledger.unstake(provider, 41)
    ledger.unstake(provider, 40)
    assert ledger.balance_of(provider.address) == 50 and ledger.is_conserved()


def test_slash_compensates_the_buyer_and_the_treasury_gets_the_rest(ledger: Ledger, people: dict) -> None:
    provider, buyer, arbiter = people["provider"], people["buyer"], people["arbiter"]
    for who in (provider, buyer, arbiter):
        ledger.fund_gas(who.address)
    ledger.mint(provider.address, 1000)
    ledger.stake(provider, 1000)
    with pytest.raises(Unauthorized):
        ledger.slash(buyer, provider.address, 100, buyer.address, 100)
    with pytest.raises(InsufficientFunds):
        ledger.slash(arbiter, provider.address, 1001, buyer.address, 0)
    with pytest.raises(InvalidAmount):
        ledger.slash(arbiter, provider.address, 100, buyer.address, 101)
    ledger.slash(arbiter, provider.address, 300, buyer.address, 200)
    assert ledger.stake_of(provider.address).stake == 700
    assert ledger.balance_of(buyer.address) == 200
    assert ledger.balance_of(ledger.treasury) == 100
    assert ledger.total_supply() == 1000 and ledger.is_conserved()


@pytest.mark.chain
def test_deposit_hooks_only_accept_the_token() -> None:
    """Calling onTokenTransfer directly would credit a deposit or stake without tokens."""
    from agora.agents.identity import Identity
    from agora.chain import EVMLedger

    ledger = EVMLedger.embedded()
    mallory = Identity.from_seed("tests", "mallory")
    ledger.fund_gas(mallory.address)
    for contract in (ledger.batch_contract, ledger.staking_contract):
        call = contract.functions.onTokenTransfer(mallory.address, 10**18, b"")
        with pytest.raises(Exception, match="unauthorized"):
            call.build_transaction({"from": mallory.address})
    assert ledger.batch_account(mallory.address).deposit == 0
    assert ledger.stake_of(mallory.address).stake == 0
