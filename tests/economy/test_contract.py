from __future__ import annotations

import pytest

from agora.economy import BadContractSignature, Contract, InvalidContract, deal_id_for

ESCROW = "0x" + "ee" * 20


def _contract(people, provider_amount=5_000, owner_amount=3_000, data_amount=2_000) -> Contract:
    job_hash = "0x" + "11" * 32
    return Contract(
        deal_id=deal_id_for(people["buyer"].address, job_hash, 0),
        buyer=people["buyer"].address,
        payees=[
            {"address": people["provider"].address, "role": "provider", "amount": provider_amount},
            {"address": people["owner"].address, "role": "model_owner", "amount": owner_amount},
            {"address": people["data"].address, "role": "data_owner", "amount": data_amount},
        ],
        deadline=2_000_000_000,
        job_hash=job_hash,
        chain_id=1,
        escrow_contract=ESCROW,
    )


def test_shares_and_payout_follow_prices(people) -> None:
    c = _contract(people)
    assert c.max_amount == 10_000 and c.shares_bps() == [5000, 3000, 2000]
    assert c.payout(10_000) == {people["provider"].address: 5000, people["owner"].address: 3000, people["data"].address: 2000}
    odd = _contract(people, 1, 1, 1)
    assert odd.shares_bps() == [3334, 3333, 3333] and sum(odd.payout(3).values()) == 3


def test_both_parties_sign_typed_data(people) -> None:
    c = _contract(people)
    sig = people["buyer"].sign_typed_data(c.typed_data())
    c.verify_signature(sig, people["buyer"].address)
    with pytest.raises(BadContractSignature):
        c.verify_signature(sig, people["provider"].address)
    changed = _contract(people, provider_amount=5_001)
    assert changed.digest() != c.digest()
    with pytest.raises(BadContractSignature):
        changed.verify_signature(sig, people["buyer"].address)
    with pytest.raises(BadContractSignature):
        c.verify_signature("0x1234", people["buyer"].address)


def test_invalid_terms_are_refused(people) -> None:
    with pytest.raises(InvalidContract, match="amount"):
        _contract(people, provider_amount=-1)
    with pytest.raises(InvalidContract, match="worth"):
        _contract(people, 0, 0, 0)
    with pytest.raises(InvalidContract, match="deal_id"):
        Contract(
            deal_id="0x12",
            buyer=people["buyer"].address,
            payees=[{"address": people["provider"].address, "role": "provider", "amount": 1}],
            deadline=1,
            job_hash="0x" + "1" * 64,
        )
