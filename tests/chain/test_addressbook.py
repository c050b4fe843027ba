"""Deploy once, reuse on later runs: the address book is checked against the node and source."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from agora.chain import EVMLedger, InvalidArgument
from agora.chain.addressbook import AddressBook

pytestmark = pytest.mark.anvil


def test_connect_with_a_book_reuses_the_deployment(anvil_url, tmp_path, people) -> None:
    first = EVMLedger.connect(anvil_url)
    first.open_account(people["buyer"])
    first.mint(people["buyer"].address, 500)
    first.transfer(people["buyer"], people["provider"].address, 200)
    path = first.address_book().save(tmp_path / "book.json")

    again = EVMLedger.connect(anvil_url, address_book=str(path))
    assert again.token.address == first.token.address
    assert again.balance_of(people["provider"].address) == 200  # the same chain state
    assert set(again.accounts()) >= {people["buyer"].address, people["provider"].address}  # rebuilt from events
    assert again.is_conserved()


def test_a_mismatched_book_is_refused(anvil_url, tmp_path) -> None:
    book = EVMLedger.connect(anvil_url).address_book()
    wrong_chain = book.model_copy(update={"chain_id": book.chain_id + 1})
    with pytest.raises(InvalidArgument, match="chain"):
        EVMLedger.connect(anvil_url, address_book=str(wrong_chain.save(tmp_path / "a.json")))
    swapped = book.model_copy(update={"contracts": {**book.contracts, "Escrow": book.contracts["Token"]}})
    with pytest.raises(InvalidArgument, match="Escrow"):
        EVMLedger.connect(anvil_url, address_book=str(swapped.save(tmp_path / "b.json")))
    with pytest.raises(InvalidArgument, match="cannot read"):
        AddressBook.load(tmp_path / "missing.json")


def test_cli_deploys_and_checks(anvil_url, tmp_path) -> None:
    out = tmp_path / "book.json"
    agora = [sys.executable, "-m", "agora.simulations.cli"]
    deployed = subprocess.run([*agora, "chain", "deploy", "--rpc", anvil_url, "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert deployed.returncode == 0, deployed.stderr
    assert set(json.loads(out.read_text())["contracts"]) == {"Token", "Escrow", "PaymentChannel", "BatchSettlement", "Staking"}
    checked = subprocess.run([*agora, "chain", "check", "--rpc", anvil_url, "--book", str(out)], capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0 and checked.stdout.startswith("ok: chain")
