"""One suite for every ledger backend: same rules, same errors, same results."""

from __future__ import annotations

import pytest

from agora.chain import (
    AlreadySettled,
    DeadlineNotReached,
    EscrowExists,
    EscrowNotFound,
    EscrowTerms,
    InsufficientFunds,
    InvalidAmount,
    InvalidArgument,
    Ledger,
    Unauthorized,
    split,
)
from tests.conftest import TOKEN, owned

ESCROW_ID = owned("buyer", "conformance")


def _setup(ledger: Ledger, people: dict) -> None:
    for who in people.values():
        ledger.open_account(who)
    ledger.mint(people["buyer"].address, 100 * TOKEN)


def _terms(ledger: Ledger, people: dict, amount: int = 10 * TOKEN, **kw) -> EscrowTerms:
    base = dict(
        escrow_id=ESCROW_ID,
        payees=[people["provider"].address, people["owner"].address, people["data"].address],
        shares_bps=[5000, 3333, 1667],
        amount=amount,
        deadline=ledger.now() + 600,
        arbiter=people["arbiter"].address,
    )
    return EscrowTerms(**{**base, **kw})


def _balances(ledger: Ledger, people: dict) -> dict[str, int]:
    return {k: ledger.balance_of(p.address) for k, p in people.items()}


def test_mint_and_transfer_conserve(ledger: Ledger, people: dict) -> None:
    _setup(ledger, people)
    ledger.transfer(people["buyer"], people["stranger"].address, 7)
    assert ledger.balance_of(people["stranger"].address) == 7
    assert ledger.balance_of(people["buyer"].address) == 100 * TOKEN - 7
    assert ledger.total_supply() == 100 * TOKEN
    assert ledger.is_conserved()


def test_release_splits_by_rule_and_returns_rest(ledger: Ledger, people: dict) -> None:
    _setup(ledger, people)
    before = _balances(ledger, people)
    ledger.open_escrow(people["buyer"], _terms(ledger, people, amount=1001))
    assert ledger.escrowed_total() == 1001 and ledger.is_conserved()
    ledger.release(people["buyer"], ESCROW_ID, 999)
    after = _balances(ledger, people)
    parts = split(999, [5000, 3333, 1667])
    assert parts == [501, 332, 166]  # remainder of integer division goes to payee 0
    assert after["provider"] - before["provider"] == parts[0]
    assert after["owner"] - before["owner"] == parts[1]
    assert after["data"] - before["data"] == parts[2]
    assert after["buyer"] - before["buyer"] == -999
    assert ledger.escrow(ESCROW_ID).status == "released"
    assert ledger.escrowed_total() == 0 and ledger.is_conserved()


def test_release_items_pays_each_line_its_own_amount(ledger: Ledger, people: dict) -> None:
    """A metered bill: each payee its own amount, at most its line (the split of the lock); the
    rest back to the buyer. Bad bills are refused with the same error everywhere, changing nothing."""
    _setup(ledger, people)
    before = _balances(ledger, people)
    ledger.open_escrow(people["buyer"], _terms(ledger, people, amount=1001))
    lines = split(1001, [5000, 3333, 1667])  # [502, 333, 166]
    with pytest.raises(InvalidAmount, match="over line"):
        ledger.release_items(people["buyer"], ESCROW_ID, [lines[0] + 1, 0, 0])
    with pytest.raises(InvalidAmount, match="over line"):
        ledger.release_items(people["buyer"], ESCROW_ID, [0, 0, lines[2] + 1])
    with pytest.raises(InvalidArgument, match="bad lines"):
        ledger.release_items(people["buyer"], ESCROW_ID, [1, 2])
    with pytest.raises(Unauthorized):
        ledger.release_items(people["stranger"], ESCROW_ID, [1, 2, 3])
    assert ledger.escrow(ESCROW_ID).status == "open" and _balances(ledger, people)["provider"] == before["provider"]
    ledger.release_items(people["buyer"], ESCROW_ID, [400, 333, 0])
    after = _balances(ledger, people)
    assert after["provider"] - before["provider"] == 400 and after["owner"] - before["owner"] == 333
    assert after["data"] == before["data"] and after["buyer"] - before["buyer"] == -733
    assert ledger.escrow(ESCROW_ID).status == "released" and ledger.escrowed_total() == 0 and ledger.is_conserved()
    with pytest.raises(AlreadySettled):
        ledger.release_items(people["buyer"], ESCROW_ID, [1, 0, 0])


def test_settles_exactly_once(ledger: Ledger, people: dict) -> None:
    _setup(ledger, people)
    ledger.open_escrow(people["buyer"], _terms(ledger, people))
    ledger.release(people["arbiter"], ESCROW_ID, 10 * TOKEN)
    snapshot = _balances(ledger, people)
    with pytest.raises(AlreadySettled):
        ledger.release(people["buyer"], ESCROW_ID, 1)
    with pytest.raises(AlreadySettled):
        ledger.refund(people["arbiter"], ESCROW_ID)
    assert _balances(ledger, people) == snapshot


def test_refund_rules_follow_the_deadline(ledger: Ledger, people: dict) -> None:
    _setup(ledger, people)
    ledger.open_escrow(people["buyer"], _terms(ledger, people))
    with pytest.raises(DeadlineNotReached):
        ledger.refund(people["buyer"], ESCROW_ID)
    with pytest.raises(Unauthorized):
        ledger.refund(people["stranger"], ESCROW_ID)
    ledger.advance_time(601)  # time travel instead of sleeping
    ledger.refund(people["buyer"], ESCROW_ID)
    assert ledger.balance_of(people["buyer"].address) == 100 * TOKEN
    assert ledger.escrow(ESCROW_ID).status == "refunded"
    with pytest.raises(AlreadySettled):  # a release after a refund
        ledger.release(people["buyer"], ESCROW_ID, 1)
    assert ledger.is_conserved()


def test_provider_may_refund_before_deadline(ledger: Ledger, people: dict) -> None:
    _setup(ledger, people)
    ledger.open_escrow(people["buyer"], _terms(ledger, people))
    ledger.refund(people["provider"], ESCROW_ID)
    assert ledger.balance_of(people["buyer"].address) == 100 * TOKEN


def test_stranger_cannot_release_and_nothing_changes(ledger: Ledger, people: dict) -> None:
    _setup(ledger, people)
    ledger.open_escrow(people["buyer"], _terms(ledger, people))
    snapshot = _balances(ledger, people)
    for who in ("stranger", "provider", "owner"):
        with pytest.raises(Unauthorized):
            ledger.release(people[who], ESCROW_ID, 1)
    assert _balances(ledger, people) == snapshot
    assert ledger.escrow(ESCROW_ID).status == "open"


def test_bad_input_is_refused_with_typed_errors(ledger: Ledger, people: dict) -> None:
    _setup(ledger, people)
    snapshot = _balances(ledger, people)
    for bad in (-1, 1.5, "10", True, None, 2**256):
        with pytest.raises(InvalidAmount):
            ledger.transfer(people["buyer"], people["stranger"].address, bad)
    with pytest.raises(InvalidArgument):
        ledger.transfer(people["buyer"], "0xnot-an-address", 1)
    with pytest.raises(InsufficientFunds):
        ledger.transfer(people["stranger"], people["buyer"].address, 1)
    with pytest.raises(InsufficientFunds):
        ledger.open_escrow(people["buyer"], _terms(ledger, people, amount=101 * TOKEN))
    with pytest.raises(InvalidArgument):
        _terms(ledger, people, shares_bps=[5000, 5000, 1])
    with pytest.raises(InvalidArgument):
        _terms(ledger, people, amount=0)
    with pytest.raises(InvalidArgument):
        ledger.open_escrow(people["buyer"], _terms(ledger, people, deadline=ledger.now() - 1))
    with pytest.raises(EscrowNotFound):
        ledger.release(people["buyer"], ESCROW_ID, 1)
    with pytest.raises(EscrowNotFound):
        ledger.escrow(ESCROW_ID)
    assert _balances(ledger, people) == snapshot
    assert ledger.total_supply() == 100 * TOKEN and ledger.is_conserved()


def test_escrow_id_cannot_be_reused_and_over_release_refused(ledger: Ledger, people: dict) -> None:
    _setup(ledger, people)
    ledger.open_escrow(people["buyer"], _terms(ledger, people, amount=50))
    with pytest.raises(EscrowExists):
        ledger.open_escrow(people["buyer"], _terms(ledger, people, amount=50))
    with pytest.raises(InvalidAmount):
        ledger.release(people["buyer"], ESCROW_ID, 51)
    assert ledger.escrowed_total() == 50


def test_escrow_needs_an_opened_account(ledger: Ledger, people: dict) -> None:
    ledger.mint(people["stranger"].address, 100)
    ledger.fund_gas(people["stranger"].address)
    with pytest.raises(Unauthorized):
        ledger.open_escrow(people["stranger"], _terms(ledger, people, amount=10))
    assert ledger.balance_of(people["stranger"].address) == 100


def test_escrow_state_is_readable(ledger: Ledger, people: dict) -> None:
    _setup(ledger, people)
    terms = _terms(ledger, people)
    ledger.open_escrow(people["buyer"], terms)
    state = ledger.escrow(ESCROW_ID)
    assert state.buyer == people["buyer"].address
    assert state.payees == terms.payees and state.shares_bps == terms.shares_bps
    assert state.amount == terms.amount and state.deadline == terms.deadline
    assert state.arbiter == people["arbiter"].address


def test_malformed_escrow_ids_are_refused(ledger: Ledger, people: dict) -> None:
    for bad in ("0x1234", "ab" * 32, "0x" + "zz" * 32, 7):
        with pytest.raises(InvalidArgument):
            ledger.escrow(bad)
        with pytest.raises(InvalidArgument):
            ledger.refund(people["buyer"], bad)


def test_an_exchange_settles_trades_within_allowances_all_or_nothing(ledger: Ledger, people: dict) -> None:
    """transfer_from_many: lines in order (a later line may spend what an earlier one paid in),
    each within what its payer allowed the caller; one failing line reverts them all."""
    _setup(ledger, people)
    buyer, owner, exchange = people["buyer"], people["owner"], people["stranger"]
    ledger.approve(buyer, exchange.address, 30 * TOKEN)
    ledger.approve(owner, exchange.address, 5 * TOKEN)
    assert ledger.allowance(buyer.address, exchange.address) == 30 * TOKEN
    before = _balances(ledger, people)
    lines = [
        (buyer.address, owner.address, 10 * TOKEN),
        (owner.address, people["data"].address, 4 * TOKEN),
        (buyer.address, people["provider"].address, 7 * TOKEN),
    ]
    ledger.transfer_from_many(exchange, lines)
    after = _balances(ledger, people)
    assert after["buyer"] == before["buyer"] - 17 * TOKEN and after["owner"] == 6 * TOKEN and after["data"] == 4 * TOKEN and after["provider"] == 7 * TOKEN
    assert ledger.allowance(buyer.address, exchange.address) == 13 * TOKEN and ledger.allowance(owner.address, exchange.address) == TOKEN
    with pytest.raises(Unauthorized, match="allowance"):  # line 1 is over the owner's allowance: line 0 is undone too
        ledger.transfer_from_many(exchange, [(buyer.address, owner.address, TOKEN), (owner.address, buyer.address, 2 * TOKEN)])
    with pytest.raises(InsufficientFunds):  # within the allowance, beyond the balance
        ledger.approve(people["data"], exchange.address, 100 * TOKEN)
        ledger.transfer_from_many(exchange, [(people["data"].address, buyer.address, 5 * TOKEN)])
    with pytest.raises(Unauthorized):  # nobody allowed the buyer itself to pull
        ledger.transfer_from_many(buyer, [(owner.address, buyer.address, 1)])
    with pytest.raises(InvalidArgument, match="1 to 256 lines"):
        ledger.transfer_from_many(exchange, [])
    with pytest.raises(InvalidAmount):
        ledger.transfer_from_many(exchange, [(buyer.address, owner.address, -1)])
    with pytest.raises(InvalidArgument, match=r"transfers\[0\].to"):
        ledger.transfer_from_many(exchange, [(buyer.address, "0x12", 1)])
    assert _balances(ledger, people) == after and ledger.allowance(buyer.address, exchange.address) == 13 * TOKEN
    assert ledger.is_conserved()


def test_a_settlement_reference_settles_once(ledger: Ledger, people: dict) -> None:
    """An exchange that crashed after its round's settlement landed asks again with the same
    reference: refused, nothing moves twice, and ``settlement`` tells it which lines were paid."""
    from agora.chain import AlreadySettled
    from agora.chain.types import lines_hash

    _setup(ledger, people)
    buyer, owner, exchange = people["buyer"], people["owner"], people["stranger"]
    ledger.approve(buyer, exchange.address, 30 * TOKEN)
    ref, other = "0x" + "ab" * 32, "0x" + "cd" * 32
    assert not ledger.ref_settled(exchange.address, ref) and ledger.settlement(exchange.address, ref) is None
    ledger.transfer_from_many(exchange, [(buyer.address, owner.address, 3 * TOKEN)], ref=ref)
    assert ledger.ref_settled(exchange.address, ref) and not ledger.ref_settled(exchange.address, other)
    assert ledger.settlement(exchange.address, ref) == lines_hash([buyer.address], [owner.address], [3 * TOKEN])
    before = _balances(ledger, people)
    with pytest.raises(AlreadySettled, match="ref settled"):
        ledger.transfer_from_many(exchange, [(buyer.address, owner.address, 3 * TOKEN)], ref=ref)
    assert _balances(ledger, people) == before and ledger.allowance(buyer.address, exchange.address) == 27 * TOKEN
    ledger.transfer_from_many(exchange, [(buyer.address, owner.address, TOKEN)])  # no reference: as before
    ledger.transfer_from_many(exchange, [(buyer.address, owner.address, TOKEN)])
    assert ledger.balance_of(owner.address) == before["owner"] + 2 * TOKEN
    for bad in ("0x1234", "ab" * 33, "0x" + "zz" * 32, 7):
        with pytest.raises(InvalidArgument, match="ref"):
            ledger.transfer_from_many(exchange, [(buyer.address, owner.address, 1)], ref=bad)
    assert ledger.is_conserved()


def test_events_from_the_block_number_on_are_only_what_came_after(ledger: Ledger, people: dict) -> None:
    _setup(ledger, people)
    ledger.open_escrow(people["buyer"], _terms(ledger, people, amount=1000))
    mark = ledger.block_number()
    assert [e.kind for e in ledger.events(from_block=mark)] == ["Opened"]  # the latest block's own
    later = owned("buyer", "later")
    ledger.open_escrow(people["buyer"], _terms(ledger, people, amount=500, escrow_id=later))
    ledger.release_items(people["buyer"], later, [100, 50, 0])
    assert ledger.block_number() > mark
    seen = ledger.events(from_block=mark + 1)
    assert [(e.kind, e.args["deal_id"]) for e in seen] == [("Opened", later), ("Released", later)]
    assert seen[-1].args["paid"] == 150 and seen[-1].args["returned"] == 350
