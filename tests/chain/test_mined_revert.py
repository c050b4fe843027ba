"""A transaction that passes its gas estimate and then reverts when mined (the state moved in
between: a race with another sender, or a node restarted from its state dump, as the chaos run
saw) is reported with the contract's own reason and typed error, not a bare "reverted": a
receipt carries no reason, so the ledger replays the call on the state before its block."""

from __future__ import annotations

import pytest

from agora.chain import EscrowNotFound, EVMLedger
from agora.chain.types import owned_id
from tests.conftest import ARBITER, TOKEN, TREASURY

pytestmark = pytest.mark.anvil


def test_a_revert_at_mining_names_the_contracts_reason(anvil_url: str) -> None:
    from agora.agents.identity import Identity

    ledger = EVMLedger.connect(anvil_url, arbiter=ARBITER.address, treasury=TREASURY.address)
    buyer = Identity.from_seed("mined-revert", "buyer")
    ledger.open_account(buyer)
    ledger.mint(buyer.address, TOKEN)
    unknown = owned_id(buyer.address, "never opened")
    call = ledger.escrow_contract.functions.release(bytes.fromhex(unknown[2:]), 1).build_transaction(
        {"from": buyer.address, "nonce": ledger.w3.eth.get_transaction_count(buyer.address), "gas": 200_000}
    )  # a fixed gas: no estimate, so the node mines it and it reverts there
    tx_hash = ledger.w3.eth.send_raw_transaction(buyer.sign_transaction(call))
    assert ledger.w3.eth.wait_for_transaction_receipt(tx_hash)["status"] == 0
    with pytest.raises(EscrowNotFound, match="reverted in block .*escrow: unknown"):
        raise ledger._mined_revert("release", buyer.address, tx_hash, ledger.w3.eth.get_transaction_receipt(tx_hash))
    with pytest.raises(EscrowNotFound, match="escrow: unknown"):
        ledger._receipt("release", buyer.address, tx_hash)
