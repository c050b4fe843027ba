"""A line paid at use (``Escrow.draw``), the same on every ledger (issue 19: a data owner's fee
must not depend on what the buyer chooses to release or on a provider's refund)."""

from __future__ import annotations

import pytest

from agora.chain import AlreadySettled, Disputed, InvalidAmount, InvalidArgument, Ledger, Unauthorized, split
from tests.chain.test_ledger_conformance import ESCROW_ID, _balances, _setup, _terms
from tests.conftest import owned

AMOUNT = 10_001  # shares 5000 / 3333 / 1667: lines 5002 / 3333 / 1667


def _drawn(ledger: Ledger, people: dict) -> dict[str, int]:
    _setup(ledger, people)
    ledger.open_escrow(people["buyer"], _terms(ledger, people, amount=AMOUNT, drawable=[2]))
    before = _balances(ledger, people)
    ledger.draw(people["provider"], ESCROW_ID, 2)  # the data owner's line, at use
    return before


def test_a_drawn_line_is_paid_at_once_and_kept_by_the_release(ledger: Ledger, people: dict) -> None:
    before = _drawn(ledger, people)
    data_line = split(AMOUNT, [5000, 3333, 1667])[2]
    assert ledger.balance_of(people["data"].address) - before["data"] == data_line == 1667
    state = ledger.escrow(ESCROW_ID)
    assert state.drawn == [0, 0, 1667] and state.held == AMOUNT - 1667
    assert ledger.escrowed_total() == AMOUNT - 1667 and ledger.is_conserved()
    assert [e.kind for e in ledger.events() if e.kind == "Drawn"] == ["Drawn"]
    # the buyer releases 0 to the data line: the draw stands, the rest of its bill is paid
    ledger.release_items(people["buyer"], ESCROW_ID, [1000, 500, 0])
    after = _balances(ledger, people)
    assert after["data"] - before["data"] == 1667
    assert (after["provider"] - before["provider"], after["owner"] - before["owner"]) == (1000, 500)
    assert after["buyer"] - before["buyer"] == AMOUNT - 1000 - 500 - 1667
    assert ledger.escrowed_total() == 0 and ledger.is_conserved()


def test_a_refund_after_a_draw_returns_only_what_is_held(ledger: Ledger, people: dict) -> None:
    before = _drawn(ledger, people)
    ledger.refund(people["provider"], ESCROW_ID)
    after = _balances(ledger, people)
    assert after["data"] - before["data"] == 1667
    assert after["buyer"] - before["buyer"] == AMOUNT - 1667
    assert ledger.escrow(ESCROW_ID).status == "refunded" and ledger.escrowed_total() == 0 and ledger.is_conserved()


@pytest.mark.parametrize("paid", [0, 3000, AMOUNT])
def test_a_ruling_after_a_draw_keeps_it_and_conserves(ledger: Ledger, people: dict, paid: int) -> None:
    before = _drawn(ledger, people)
    ledger.dispute(people["buyer"], ESCROW_ID)
    ledger.resolve(people["arbiter"], ESCROW_ID, paid)
    after = _balances(ledger, people)
    provider, owner, data = split(paid, [5000, 3333, 1667])
    excess = 1667 - data  # drawn beyond its part of the ruling: out of the buyer's return
    back = AMOUNT - paid - excess
    if back < 0:
        provider, back = provider + back, 0
    assert after["data"] - before["data"] == 1667
    assert (after["provider"] - before["provider"], after["owner"] - before["owner"]) == (provider, owner)
    assert after["buyer"] - before["buyer"] == back
    assert ledger.escrowed_total() == 0 and ledger.is_conserved()


def test_only_the_provider_draws_each_line_once_while_open(ledger: Ledger, people: dict) -> None:
    _setup(ledger, people)
    ledger.open_escrow(people["buyer"], _terms(ledger, people, amount=AMOUNT, drawable=[2]))
    before = _balances(ledger, people)
    for who in ("buyer", "data", "stranger", "arbiter"):
        with pytest.raises(Unauthorized):
            ledger.draw(people[who], ESCROW_ID, 2)
    with pytest.raises(InvalidArgument):
        ledger.draw(people["provider"], ESCROW_ID, 0)  # the provider's own pay waits
    with pytest.raises(InvalidArgument):
        ledger.draw(people["provider"], ESCROW_ID, 3)  # no such line
    with pytest.raises(Unauthorized):
        ledger.draw(people["provider"], ESCROW_ID, 1)  # the model owner's royalty: not a line the buyer let be drawn
    assert _balances(ledger, people) == before
    ledger.draw(people["provider"], ESCROW_ID, 2)
    with pytest.raises(AlreadySettled):
        ledger.draw(people["provider"], ESCROW_ID, 2)
    ledger.dispute(people["buyer"], ESCROW_ID)
    with pytest.raises(Disputed):
        ledger.draw(people["provider"], ESCROW_ID, 2)
    with pytest.raises(AlreadySettled):
        ledger.draw(people["arbiter"], ESCROW_ID, 2)
    assert ledger.is_conserved()


def test_the_resolver_draws_on_a_dispute_for_its_own_re_run(ledger: Ledger, people: dict) -> None:
    """The arbiter re-runs a disputed job on the data owner's vault: that use is paid too."""
    _setup(ledger, people)
    ledger.open_escrow(people["buyer"], _terms(ledger, people, amount=AMOUNT, drawable=[2]))
    with pytest.raises(Unauthorized):
        ledger.draw(people["arbiter"], ESCROW_ID, 2)  # while open, only the provider
    ledger.dispute(people["buyer"], ESCROW_ID)
    before = _balances(ledger, people)
    ledger.draw(people["arbiter"], ESCROW_ID, 2)
    assert ledger.balance_of(people["data"].address) - before["data"] == 1667
    ledger.resolve(people["arbiter"], ESCROW_ID, 0)
    assert ledger.balance_of(people["buyer"].address) - before["buyer"] == AMOUNT - 1667 and ledger.is_conserved()


def test_an_empty_line_cannot_be_drawn(ledger: Ledger, people: dict) -> None:
    _setup(ledger, people)
    ledger.open_escrow(people["buyer"], _terms(ledger, people, amount=5, drawable=[2]))  # 5 * 1667 // 10000 == 0
    with pytest.raises(InvalidAmount):
        ledger.draw(people["provider"], ESCROW_ID, 2)


def test_the_buyer_grants_which_lines_may_be_drawn(ledger: Ledger, people: dict) -> None:
    """Only lines the buyer granted at opening, never the provider's own (a provider could
    otherwise pay a payee it colludes with, a royalty line, and refund the rest)."""
    _setup(ledger, people)
    with pytest.raises(InvalidArgument):
        ledger.open_escrow(people["buyer"], _terms(ledger, people, amount=AMOUNT, drawable=[0]))
    with pytest.raises(InvalidArgument):
        ledger.open_escrow(people["buyer"], _terms(ledger, people, amount=AMOUNT, drawable=[3]))
    ledger.open_escrow(people["buyer"], _terms(ledger, people, amount=AMOUNT))  # none granted
    assert ledger.escrow(ESCROW_ID).drawable == []
    for line in (1, 2):
        with pytest.raises(Unauthorized):
            ledger.draw(people["provider"], ESCROW_ID, line)
    assert ledger.escrow(ESCROW_ID).held == AMOUNT and ledger.is_conserved()
    own = _terms(ledger, people, amount=AMOUNT, escrow_id=owned("buyer", "own"), drawable=[1])
    own = own.model_copy(update={"payees": [people["provider"].address, people["provider"].address, people["data"].address]})
    ledger.open_escrow(people["buyer"], own)
    with pytest.raises(Unauthorized):
        ledger.draw(people["provider"], own.escrow_id, 1)  # a line of the provider's own
