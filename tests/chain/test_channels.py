"""Pay-per-call channels, the same on every backend (memory, embedded chain, anvil)."""

from __future__ import annotations

import pytest

from agora.chain import (
    BadSignature,
    ChannelClaim,
    ChannelExists,
    ChannelNotFound,
    ChannelReceiver,
    ChannelTerms,
    DeadlineNotReached,
    InvalidAmount,
    InvalidArgument,
    Ledger,
    Unauthorized,
    voucher_typed_data,
)
from tests.conftest import TOKEN, owned

CH = owned("buyer", "c1")
CH2 = owned("buyer", "c2")


def _open(ledger: Ledger, people: dict, channel_id: str = CH, amount: int = 10 * TOKEN) -> None:
    for who in people.values():
        ledger.open_account(who)
    if ledger.balance_of(people["buyer"].address) == 0:
        ledger.mint(people["buyer"].address, 100 * TOKEN)
    terms = ChannelTerms(channel_id=channel_id, recipient=people["provider"].address, amount=amount, expiration=ledger.now() + 3600)
    ledger.open_channel(people["buyer"], terms)


def _voucher(ledger: Ledger, signer, channel_id: str, amount: int) -> ChannelClaim:
    nonce = ledger.channel(channel_id).nonce
    sig = signer.sign_typed_data(voucher_typed_data(ledger.domains()["channel"], channel_id, nonce, amount))
    return ChannelClaim(channel_id=channel_id, amount=amount, signature=sig)


def test_many_calls_one_claim(ledger: Ledger, people: dict) -> None:
    _open(ledger, people)
    buyer, provider = people["buyer"], people["provider"]
    receiver = ChannelReceiver(ledger.channel(CH), ledger.domains()["channel"])
    price, spent = 3 * 10**15, 0
    for units in (1, 4, 2):  # metered calls: the increment must equal price x units
        spent += price * units
        claim = _voucher(ledger, buyer, CH, spent)
        receiver.accept(claim.amount, claim.signature, charge=price * units, now=ledger.now())
    ledger.claim_channels(provider, [ChannelClaim(channel_id=CH, amount=receiver.amount, signature=receiver.signature)])
    assert ledger.balance_of(provider.address) == spent
    state = ledger.channel(CH)
    assert state.deposit == 10 * TOKEN - spent and state.nonce == 1
    assert ledger.is_conserved()


def test_voucher_checks_before_serving(ledger: Ledger, people: dict) -> None:
    _open(ledger, people)
    receiver = ChannelReceiver(ledger.channel(CH), ledger.domains()["channel"], expiry_margin=60)
    now = ledger.now()
    good = _voucher(ledger, people["buyer"], CH, 100)
    with pytest.raises(InvalidAmount, match="costs"):
        receiver.accept(good.amount, good.signature, charge=99, now=now)  # increment != metered charge
    forged = _voucher(ledger, people["stranger"], CH, 100)
    with pytest.raises(BadSignature):
        receiver.accept(forged.amount, forged.signature, charge=100, now=now)
    too_much = _voucher(ledger, people["buyer"], CH, 11 * TOKEN)
    with pytest.raises(InvalidAmount, match="deposit"):
        receiver.accept(too_much.amount, too_much.signature, charge=11 * TOKEN, now=now)
    with pytest.raises(InvalidArgument, match="expires"):
        receiver.accept(good.amount, good.signature, charge=100, now=ledger.channel(CH).expiration - 30)
    receiver.accept(good.amount, good.signature, charge=100, now=now)
    assert receiver.amount == 100


def test_claims_are_checked_on_chain_and_used_once(ledger: Ledger, people: dict) -> None:
    _open(ledger, people)
    buyer, provider = people["buyer"], people["provider"]
    claim = _voucher(ledger, buyer, CH, 5)
    with pytest.raises(Unauthorized):
        ledger.claim_channels(people["stranger"], [claim])
    with pytest.raises(BadSignature):
        ledger.claim_channels(provider, [_voucher(ledger, people["stranger"], CH, 5)])
    with pytest.raises(InvalidAmount):
        ledger.claim_channels(provider, [_voucher(ledger, buyer, CH, 10 * TOKEN + 1)])
    with pytest.raises(ChannelNotFound):
        ledger.claim_channels(provider, [ChannelClaim(channel_id=CH2, amount=1, signature=claim.signature)])
    ledger.claim_channels(provider, [claim])
    with pytest.raises(BadSignature):  # replay: the nonce moved on
        ledger.claim_channels(provider, [claim])
    assert ledger.balance_of(provider.address) == 5 and ledger.is_conserved()


def test_claims_across_channels_in_one_operation(ledger: Ledger, people: dict) -> None:
    _open(ledger, people, CH)
    _open(ledger, people, CH2, amount=TOKEN)
    claims = [_voucher(ledger, people["buyer"], CH, 7), _voucher(ledger, people["buyer"], CH2, 11)]
    receipt = ledger.claim_channels(people["provider"], claims)
    assert ledger.balance_of(people["provider"].address) == 18
    assert receipt.op == "claim_channels"
    bad = [_voucher(ledger, people["buyer"], CH, 1), _voucher(ledger, people["stranger"], CH2, 1)]
    with pytest.raises(BadSignature):
        ledger.claim_channels(people["provider"], bad)  # all or nothing
    assert ledger.channel(CH).nonce == 1 and ledger.balance_of(people["provider"].address) == 18


def test_top_up_extend_and_reclaim_after_expiry(ledger: Ledger, people: dict) -> None:
    _open(ledger, people)
    buyer = people["buyer"]
    ledger.top_up_channel(buyer, CH, TOKEN)
    with pytest.raises(Unauthorized):
        ledger.top_up_channel(people["stranger"], CH, 1)
    expiration = ledger.channel(CH).expiration
    with pytest.raises(InvalidArgument):
        ledger.extend_channel(buyer, CH, expiration - 1)
    with pytest.raises(Unauthorized):
        ledger.extend_channel(people["provider"], CH, expiration + 1)
    ledger.extend_channel(buyer, CH, expiration + 600)
    assert ledger.channel(CH).deposit == 11 * TOKEN and ledger.channel(CH).expiration == expiration + 600
    with pytest.raises(DeadlineNotReached):
        ledger.reclaim_channel(buyer, CH)
    ledger.claim_channels(people["provider"], [_voucher(ledger, buyer, CH, TOKEN)])
    ledger.advance_time(3600 + 601)
    with pytest.raises(Unauthorized):
        ledger.reclaim_channel(people["provider"], CH)
    ledger.reclaim_channel(buyer, CH)
    assert ledger.balance_of(buyer.address) == 99 * TOKEN
    assert ledger.channel(CH).deposit == 0 and ledger.is_conserved()


def test_channel_bad_input(ledger: Ledger, people: dict) -> None:
    _open(ledger, people)
    with pytest.raises(ChannelExists):
        _open(ledger, people)
    with pytest.raises(InvalidArgument):
        ChannelTerms(channel_id=CH2, recipient=people["provider"].address, amount=0, expiration=ledger.now() + 10)
    with pytest.raises(InvalidArgument):
        ChannelTerms(channel_id="0x12", recipient=people["provider"].address, amount=1, expiration=1)
    with pytest.raises(InvalidArgument):
        ledger.open_channel(people["buyer"], ChannelTerms(channel_id=CH2, recipient=people["provider"].address, amount=1, expiration=ledger.now() - 1))
    with pytest.raises(InvalidAmount):
        ledger.top_up_channel(people["buyer"], CH, -1)
    assert ledger.balance_of(people["buyer"].address) == 90 * TOKEN


def test_no_claim_after_the_buyer_reclaimed(ledger: Ledger, people: dict) -> None:
    """A provider may still claim after expiry until the buyer reclaims; after that, nothing is left."""
    _open(ledger, people)
    late = _voucher(ledger, people["buyer"], CH, 5)
    ledger.advance_time(3601)
    ledger.reclaim_channel(people["buyer"], CH)
    with pytest.raises(InvalidAmount):
        ledger.claim_channels(people["provider"], [late])
    assert ledger.balance_of(people["buyer"].address) == 100 * TOKEN and ledger.is_conserved()
