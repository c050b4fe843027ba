"""Properties and a differential test: the memory ledger and the EVM agree on every outcome.

Random operation sequences run on both backends side by side; after each step both must have
succeeded, or both failed with the same error class, and hold the same balances; the token is
conserved throughout. Bounded, derandomized profile in CI (HYPOTHESIS_PROFILE=deep for more).
"""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agora.agents.identity import Identity
from agora.chain import BPS, ChainError, EscrowTerms, EVMLedger, InsufficientFunds, InvalidAmount, Ledger, MemoryLedger, TransactionFailed, split
from agora.chain.types import owned_id

PEOPLE = [Identity.from_seed("prop", n) for n in "abcd"]
UINT256_MAX = 2**256 - 1


@given(amount=st.integers(0, 2**255), shares=st.lists(st.integers(0, BPS), min_size=1, max_size=8))
def test_split_never_loses_or_creates(amount: int, shares: list[int]) -> None:
    total = sum(shares)
    shares = [BPS - sum(shares[1:])] + shares[1:] if total else [BPS]
    if shares[0] < 0:
        return
    parts = split(amount, shares)
    assert sum(parts) == amount and all(p >= 0 for p in parts)
    assert all(parts[i] == amount * shares[i] // BPS for i in range(1, len(shares)))


amounts = st.one_of(st.integers(0, 2_000), st.sampled_from([0, 1, 10**18, UINT256_MAX]))
who = st.integers(0, len(PEOPLE) - 1)
ops = st.one_of(
    st.tuples(st.just("transfer"), who, who, amounts),
    st.tuples(st.just("escrow"), who, who, amounts, st.integers(0, BPS)),
    st.tuples(st.just("release"), who, st.integers(0, 4), amounts),
    st.tuples(st.just("refund"), who, st.integers(0, 4)),
    # 250 s and 700 s steps never sum to the 600 s deadline, so the seconds by which the
    # embedded chain's clock runs ahead of the memory ledger's cannot flip a deadline check
    st.tuples(st.just("time"), st.sampled_from([0, 250, 700])),
    st.tuples(st.just("deposit"), who, amounts),
    st.tuples(st.just("approve"), who, who, amounts),
    st.tuples(st.just("pull"), who, st.lists(st.tuples(who, who, amounts), min_size=1, max_size=3)),
)


def _escrow(ids: list[str], n: int) -> str:
    """The n-th escrow opened so far, or an id nobody opened (EscrowNotFound on every backend)."""
    return ids[n] if n < len(ids) else "0x" + f"{n + 1:064x}"


def _apply(ledger, op, ids: list[str]) -> None:
    kind = op[0]
    if kind == "transfer":
        ledger.transfer(PEOPLE[op[1]], PEOPLE[op[2]].address, op[3])
    elif kind == "escrow":
        eid = owned_id(PEOPLE[op[1]].address, len(ids) + 1)
        ids.append(eid)
        payees = [PEOPLE[op[2]].address, PEOPLE[(op[2] + 1) % len(PEOPLE)].address]
        terms = EscrowTerms(escrow_id=eid, payees=payees, shares_bps=[BPS - op[4], op[4]], amount=max(1, op[3]), deadline=ledger.now() + 600)
        ledger.open_escrow(PEOPLE[op[1]], terms)
    elif kind == "release":
        ledger.release(PEOPLE[op[1]], _escrow(ids, op[2]), op[3])
    elif kind == "refund":
        ledger.refund(PEOPLE[op[1]], _escrow(ids, op[2]))
    elif kind == "time":
        ledger.advance_time(op[1])
    elif kind == "deposit":
        ledger.deposit(PEOPLE[op[1]], op[2])
    elif kind == "approve":
        ledger.approve(PEOPLE[op[1]], PEOPLE[op[2]].address, op[3])
    elif kind == "pull":  # an exchange settling trades by allowance, all or nothing
        ledger.transfer_from_many(PEOPLE[op[1]], [(PEOPLE[a].address, PEOPLE[b].address, x) for a, b, x in op[2]])


_EVM: dict[str, object] = {}


def _fresh_evm() -> EVMLedger:
    """The embedded chain with every person's account opened and funded, as at its first use:
    deployed once, then reverted to that snapshot for each example (a deployment costs ~1 s)."""
    if not _EVM:
        evm = EVMLedger.embedded()
        for p in PEOPLE:
            evm.open_account(p)
            evm.mint(p.address, 1_000)
        _EVM["ledger"], _EVM["snapshot"] = evm, evm.w3.provider.ethereum_tester.take_snapshot()
    evm = _EVM["ledger"]
    evm.w3.provider.ethereum_tester.revert_to_snapshot(_EVM["snapshot"])
    evm.sync_time(int(time.time()))  # the chain's clock back to now: the snapshot's block is older
    return evm


@pytest.mark.chain
@pytest.mark.slow
@settings(max_examples=8 if os.environ.get("HYPOTHESIS_PROFILE", "ci") == "ci" else settings.default.max_examples)  # ~1 s each on py-evm
@given(steps=st.lists(ops, min_size=1, max_size=10))
def test_memory_and_evm_agree_step_by_step(steps: list[tuple]) -> None:
    mem, evm = MemoryLedger(clock=lambda: 0), _fresh_evm()
    for p in PEOPLE:
        mem.open_account(p)
        mem.mint(p.address, 1_000)
    mem.sync_time(evm.now())
    ids_mem: list[str] = []
    ids_evm: list[str] = []
    for op in steps:
        outcomes = []
        for ledger, ids in ((mem, ids_mem), (evm, ids_evm)):
            try:
                _apply(ledger, op, ids)
                outcomes.append(None)
            except ChainError as exc:
                outcomes.append(type(exc))
        assert outcomes[0] == outcomes[1], (op, outcomes)
        assert [mem.balance_of(p.address) for p in PEOPLE] == [evm.balance_of(p.address) for p in PEOPLE], op
        assert mem.escrowed_total() == evm.escrowed_total()
        if op[0] in ("approve", "pull"):  # the operations that move allowances (all are compared at the end)
            assert _allowances(mem) == _allowances(evm), op
        assert mem.is_conserved()  # the EVM's balances equal these, step by step; its own sums at the end
    assert _allowances(mem) == _allowances(evm)
    assert evm.is_conserved() and evm.total_supply() == mem.total_supply()


def _allowances(ledger: Ledger) -> list[int]:
    return [ledger.allowance(a.address, b.address) for a in PEOPLE for b in PEOPLE]


@pytest.mark.parametrize("backend", ["memory", "embedded"])
def test_amounts_at_the_integer_limits(backend: str) -> None:
    ledger = MemoryLedger() if backend == "memory" else EVMLedger.embedded()
    a, b = PEOPLE[0], PEOPLE[1]
    ledger.open_account(a)
    ledger.mint(a.address, UINT256_MAX - 1)
    with pytest.raises(TransactionFailed):
        ledger.mint(b.address, 2)  # the supply would overflow uint256
    ledger.mint(b.address, 1)
    assert ledger.total_supply() == UINT256_MAX
    ledger.transfer(a, b.address, UINT256_MAX - 1)
    assert ledger.balance_of(b.address) == UINT256_MAX
    with pytest.raises(InsufficientFunds):
        ledger.transfer(a, b.address, 1)
    with pytest.raises(InvalidAmount):
        ledger.transfer(a, b.address, UINT256_MAX + 1)
    assert ledger.is_conserved()
