"""Every contract entry point called straight from its ABI (as any outside client can, with
web3 and nothing of Agora's) by each account that must not make that call: a stranger, the
other party, a former party. Each is refused with the revert reason that the ledger turns
into its typed error, on a real anvil node."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from web3.exceptions import ContractLogicError

from agora.chain import (
    AlreadySettled,
    BadSignature,
    ChainError,
    DeadlineNotReached,
    Disputed,
    EpochBuilder,
    EscrowTerms,
    EVMLedger,
    InsufficientFunds,
    Unauthorized,
)
from agora.chain.errors import error_for_reason
from agora.chain.types import ChannelClaim, ChannelTerms, owned_id
from tests.conftest import ARBITER, TOKEN, TREASURY

pytestmark = pytest.mark.anvil


@pytest.fixture(scope="module")
def market(anvil_url: str) -> dict[str, Any]:
    """One deployment with every kind of position open: escrows open, settled and disputed, a
    channel, a batch deposit and a stake."""
    from agora.agents.identity import Identity

    ledger = EVMLedger.connect(anvil_url, arbiter=ARBITER.address, treasury=TREASURY.address)
    p = {n: Identity.from_seed("access", n) for n in ("buyer", "provider", "owner", "stranger")} | {"arbiter": ARBITER}
    for who in p.values():
        ledger.open_account(who)
    ledger.mint(p["buyer"].address, 100 * TOKEN)
    ledger.mint(p["provider"].address, 10 * TOKEN)
    ids = {name: owned_id(p["buyer"].address, "access", name) for name in ("open", "settled", "disputed")}
    for _name, eid in ids.items():
        terms = EscrowTerms(
            escrow_id=eid,
            payees=[p["provider"].address, p["owner"].address],
            shares_bps=[8000, 2000],
            amount=TOKEN,
            deadline=ledger.now() + 3600,
            arbiter=ARBITER.address,
            drawable=[1],
        )
        ledger.open_escrow(p["buyer"], terms)
    ledger.release(p["buyer"], ids["settled"], TOKEN // 2)
    ledger.dispute(p["provider"], ids["disputed"])
    channel = owned_id(p["buyer"].address, "access", "channel")
    ledger.open_channel(p["buyer"], ChannelTerms(channel_id=channel, recipient=p["provider"].address, amount=TOKEN, expiration=ledger.now() + 3600))
    ledger.deposit(p["buyer"], TOKEN)
    ledger.stake(p["provider"], TOKEN)
    epoch = EpochBuilder(1, ledger.domains()["batch"])
    epoch.add(p["buyer"].address, {p["owner"].address: 10})
    forged = epoch.build(lambda _, typed: p["stranger"].sign_typed_data(typed))  # the buyer's lines, another's signature
    return {"ledger": ledger, "p": p, "ids": ids, "channel": channel, "forged": forged}


def _b(hex_id: str) -> bytes:
    return bytes.fromhex(hex_id[2:])


def _cases(m: dict[str, Any]) -> list[tuple[str, str, Callable[[], Any], type[ChainError], str]]:
    """(what, who, the contract call, expected error, expected reason)."""
    L, p, ids = m["ledger"], m["p"], m["ids"]
    tok, esc, ch = L.token.functions, L.escrow_contract.functions, L.channel_contract.functions
    bt, st = L.batch_contract.functions, L.staking_contract.functions
    b, prov, own, x = (p[k].address for k in ("buyer", "provider", "owner", "stranger"))
    op, se, dis, c = _b(ids["open"]), _b(ids["settled"]), _b(ids["disputed"]), _b(m["channel"])
    f = m["forged"]
    settle = bt.settle(f.epoch, f.buyers, f.counts, [_b(s) for s in f.signatures], f.payees, f.lines)
    cases = [("Token.mint", x, tok.mint(x, 1), Unauthorized, "token: unauthorized")]
    cases += [("Token.transferFrom", who, tok.transferFrom(b, who, 1), Unauthorized, "allowance") for who in (x, prov)]
    cases += [("Token.transferFromMany", x, tok.transferFromMany([b], [x], [1], b"\x00" * 32), Unauthorized, "allowance")]
    cases += [("Escrow.open under the buyer's id", x, esc.open(_b(owned_id(b, "next")), [x], [10_000], 1, 2**40, x, 0), Unauthorized, "not opener's id")]
    for who in (x, prov, own, ARBITER.address):
        cases += [("Escrow.dispute", who, esc.dispute(op), Unauthorized, "escrow: unauthorized")] if who != prov else []
    for who in (x, prov, own):
        cases += [
            ("Escrow.release", who, esc.release(op, 1), Unauthorized, "escrow: unauthorized"),
            ("Escrow.release_items", who, esc.release_items(op, [1, 0]), Unauthorized, "escrow: unauthorized"),
            ("Escrow.resolve", who, esc.resolve(dis, 1), Unauthorized, "escrow: unauthorized"),
        ]
    cases += [("Escrow.refund", who, esc.refund(op), Unauthorized, "escrow: unauthorized") for who in (x, own)]
    cases += [("Escrow.draw", who, esc.draw(op, 1), Unauthorized, "escrow: unauthorized") for who in (x, b, own, ARBITER.address)]
    cases += [
        ("Escrow.draw (former party)", prov, esc.draw(se, 1), AlreadySettled, "escrow: settled"),
        ("Escrow.draw (disputed)", prov, esc.draw(dis, 1), Disputed, "escrow: disputed"),
        ("Escrow.draw (disputed)", x, esc.draw(dis, 1), Disputed, "escrow: disputed"),
    ]
    cases += [
        ("Escrow.refund before the deadline", b, esc.refund(op), DeadlineNotReached, "deadline not reached"),
        ("Escrow.resolve", b, esc.resolve(dis, 1), Unauthorized, "escrow: unauthorized"),
        ("Escrow.release (former party)", b, esc.release(se, 1), AlreadySettled, "escrow: settled"),
        ("Escrow.refund (former party)", prov, esc.refund(se), AlreadySettled, "escrow: settled"),
        ("Escrow.dispute (former party)", b, esc.dispute(se), AlreadySettled, "escrow: settled"),
        ("Escrow.release (disputed)", b, esc.release(dis, 1), Disputed, "escrow: disputed"),
        ("Escrow.refund (disputed)", prov, esc.refund(dis), Disputed, "escrow: disputed"),
    ]
    cases += [("PaymentChannel.open under the buyer's id", x, ch.open(_b(owned_id(b, "next channel")), x, 1, 2**40), Unauthorized, "not sender's id")]
    for who in (x, prov):
        cases += [
            ("PaymentChannel.top_up", who, ch.top_up(c, 1), Unauthorized, "channel: unauthorized"),
            ("PaymentChannel.extend", who, ch.extend(c, 2**40), Unauthorized, "channel: unauthorized"),
            ("PaymentChannel.reclaim", who, ch.reclaim(c), Unauthorized, "channel: unauthorized"),
        ]
    cases += [("PaymentChannel.claim_many", who, ch.claim_many([c], [1], [b"\x00" * 65]), Unauthorized, "channel: unauthorized") for who in (x, b)]
    cases += [
        ("PaymentChannel.reclaim before expiry", b, ch.reclaim(c), DeadlineNotReached, "not expired"),
        ("BatchSettlement.onTokenTransfer", x, bt.onTokenTransfer(x, 100, b""), Unauthorized, "batch: unauthorized"),
        ("BatchSettlement.withdraw", x, bt.withdraw(1), DeadlineNotReached, "batch: locked"),
        ("BatchSettlement.withdraw unrequested", b, bt.withdraw(1), DeadlineNotReached, "batch: locked"),
        ("BatchSettlement.request_withdrawal", x, bt.request_withdrawal(1), InsufficientFunds, "insufficient deposit"),
        ("BatchSettlement.settle a forged part", x, settle, BadSignature, "batch: bad signature"),
        ("Staking.onTokenTransfer", x, st.onTokenTransfer(x, 100, b""), Unauthorized, "stake: unauthorized"),
        ("Staking.unstake", x, st.unstake(1), DeadlineNotReached, "stake: locked"),
        ("Staking.unstake unrequested", prov, st.unstake(1), DeadlineNotReached, "stake: locked"),
        ("Staking.request_unstake", x, st.request_unstake(1), InsufficientFunds, "insufficient stake"),
    ]
    cases += [("Staking.slash", who, st.slash(prov, 1, b, 0), Unauthorized, "stake: unauthorized") for who in (x, b, prov)]
    return cases


def test_every_entry_point_refuses_every_account_that_must_not_call_it(market: dict[str, Any]) -> None:
    ledger = market["ledger"]
    before = {a: ledger.balance_of(a) for a in ledger.accounts()}
    wrong = []
    cases = _cases(market)
    for what, who, call, error, reason in cases:
        try:
            call.call({"from": who})
        except ContractLogicError as exc:
            got = error_for_reason(str(exc.args[0] if exc.args else exc).removeprefix("execution reverted: "))
            if not isinstance(got, error) or reason not in str(got):
                wrong.append(f"{what} by {who}: {type(got).__name__}: {got}")
            continue
        wrong.append(f"{what} by {who}: accepted")
    assert not wrong, "\n".join(wrong)
    assert len(cases) >= 45
    assert {a: ledger.balance_of(a) for a in before} == before and ledger.is_conserved()


def test_the_ledger_refuses_the_same_calls_before_sending(market: dict[str, Any]) -> None:
    """Through the ledger's own API (prepare estimates first), the same refusals are typed
    errors and no transaction is sent: a sample across the contracts."""
    L, p, ids = market["ledger"], market["p"], market["ids"]
    block = L.block_number()
    with pytest.raises(Unauthorized):
        L.release(p["stranger"], ids["open"], 1)
    with pytest.raises(Unauthorized):
        L.resolve(p["buyer"], ids["disputed"], 1)
    with pytest.raises(Unauthorized):
        L.slash(p["provider"], p["provider"].address, 1, p["buyer"].address, 0)
    with pytest.raises(Unauthorized):
        L.claim_channels(p["stranger"], [ChannelClaim(channel_id=market["channel"], amount=1, signature="0x" + "00" * 65)])
    assert L.block_number() == block
