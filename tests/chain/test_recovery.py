"""Recovery: every open position is visible from the ledger alone, and on a chain a fresh
process rebuilds them all from the contracts' events."""

from __future__ import annotations

import functools

import pytest

from agora.chain import ChannelTerms, EscrowTerms, EVMLedger, Ledger
from tests.conftest import ARBITER, TOKEN, TREASURY, owned


def _open_positions(ledger: Ledger, people: dict) -> None:
    buyer, provider = people["buyer"], people["provider"]
    for who in people.values():
        ledger.open_account(who)
    ledger.mint(buyer.address, 100 * TOKEN)
    ledger.mint(provider.address, 5 * TOKEN)
    now = ledger.now()
    for n in range(3):
        terms = EscrowTerms(escrow_id=owned("buyer", n + 1), payees=[provider.address], shares_bps=[10_000], amount=(n + 1) * TOKEN, deadline=now + 600)
        ledger.open_escrow(buyer, terms)
    ledger.release(buyer, owned("buyer", 1), TOKEN)  # settled: not a position any more
    ledger.dispute(provider, owned("buyer", 2))  # disputed: still locked
    ledger.open_channel(buyer, ChannelTerms(channel_id=owned("buyer", "cc"), recipient=provider.address, amount=4 * TOKEN, expiration=now + 3600))
    ledger.deposit(buyer, 7 * TOKEN)
    ledger.stake(provider, 2 * TOKEN)


def test_positions_account_for_everything_locked(ledger: Ledger, people: dict) -> None:
    _open_positions(ledger, people)
    pos = ledger.positions()
    assert {e.escrow_id: e.status for e in pos.escrows} == {owned("buyer", 2): "disputed", owned("buyer", 3): "open"}
    assert [e.escrow_id for e in pos.escrows] == sorted(e.escrow_id for e in pos.escrows)
    assert [c.deposit for c in pos.channels] == [4 * TOKEN]
    assert pos.deposits == {people["buyer"].address: 7 * TOKEN}
    assert pos.stakes == {people["provider"].address: 2 * TOKEN}
    assert pos.total() == ledger.escrowed_total()  # nothing locked that positions miss


@pytest.mark.anvil
def test_a_fresh_process_recovers_every_position_from_events(anvil_url, tmp_path, people) -> None:
    first = EVMLedger.connect(anvil_url, arbiter=ARBITER.address, treasury=TREASURY.address)
    _open_positions(first, people)
    book = first.address_book().save(tmp_path / "book.json")
    del first  # the process that opened them is gone
    again = EVMLedger.connect(anvil_url, address_book=str(book))
    pos = again.positions()
    assert len(pos.escrows) == 2 and len(pos.channels) == 1
    assert pos.total() == again.escrowed_total()
    assert again.arbiter == ARBITER.address and again.treasury == TREASURY.address


@pytest.mark.parametrize("node", ["embedded", pytest.param("anvil", marks=pytest.mark.anvil)])
def test_events_are_the_same_on_memory_and_the_evm(people, node, request) -> None:
    """Read in one log query on the EVM (a real JSON-RPC node too): the same kinds, in order."""
    from agora.chain import MemoryLedger

    evm = EVMLedger.embedded if node == "embedded" else functools.partial(EVMLedger.connect, request.getfixturevalue("anvil_url"))
    logs = []
    for ledger in (MemoryLedger(arbiter=ARBITER.address, treasury=TREASURY.address), evm(arbiter=ARBITER.address, treasury=TREASURY.address)):
        first = ledger.w3.eth.block_number + 1 if isinstance(ledger, EVMLedger) else 0  # anvil is shared: this test's blocks only
        _open_positions(ledger, people)
        ledger.resolve(people["arbiter"], owned("buyer", 2), TOKEN)
        events = ledger.events(from_block=first)
        blocks = [e.block for e in events]
        assert blocks == sorted(blocks) and all(e.tx_hash.startswith("0x") for e in events)
        logs.append([(e.kind, {k: v for k, v in e.args.items() if k not in ("deadline", "expiration")}) for e in events])
    assert logs[0] == logs[1]
    kinds = [k for k, _ in logs[0]]
    assert kinds == ["Opened", "Opened", "Opened", "Released", "Disputed", "ChannelOpened", "Deposited", "Staked", "Released"]
