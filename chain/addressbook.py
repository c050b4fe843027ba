"""Address books: deploy the contracts once per chain, then find and check them on connect.

A book records the chain id and, per contract, its address and the keccak of its deployed
code. Connecting with a book checks all three against the node and against the contracts
compiled from this checkout's source, so a run never talks to a stale or foreign deployment.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from eth_utils import keccak
from pydantic import BaseModel

from agora.chain.compiler import compile_contract
from agora.chain.errors import InvalidArgument


class Deployed(BaseModel):
    address: str
    code_hash: str


class AddressBook(BaseModel):
    chain_id: int
    operator: str
    contracts: dict[str, Deployed]
    deployed_at: int = 0

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.model_dump(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: Path | str) -> AddressBook:
        try:
            return cls.model_validate_json(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise InvalidArgument(f"cannot read address book {path}: {exc}") from None


def expected_code_hash(name: str) -> str:
    """keccak of the runtime code this checkout's source compiles to."""
    return "0x" + keccak(hexstr=compile_contract(name)["bytecode_runtime"]).hex()


def record(chain_id: int, operator: str, addresses: dict[str, str], code: dict[str, bytes]) -> AddressBook:
    contracts = {name: Deployed(address=addresses[name], code_hash="0x" + keccak(code[name]).hex()) for name in addresses}
    return AddressBook(chain_id=chain_id, operator=operator, contracts=contracts, deployed_at=int(time.time()))


def check(book: AddressBook, chain_id: int, code: dict[str, bytes]) -> None:
    """Raise InvalidArgument naming the first thing that does not match."""
    if book.chain_id != chain_id:
        raise InvalidArgument(f"address book is for chain {book.chain_id}, the node is chain {chain_id}")
    for name, deployed in book.contracts.items():
        actual = "0x" + keccak(code[name]).hex()
        if actual != deployed.code_hash:
            raise InvalidArgument(f"{name} at {deployed.address} has other code than the address book records")
        if actual != expected_code_hash(name):
            raise InvalidArgument(f"{name} at {deployed.address} was built from other source than this checkout's")
