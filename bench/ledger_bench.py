"""Ledger throughput: Agora's ledgers against raw writes on the same backend, in one run.

    python bench/ledger_bench.py [--n 200] [--rpc-url http://127.0.0.1:8545]

Rows: transfers and escrow cycles (open + release) per second. Baselines: a raw dict update for
the memory ledger; a raw web3 ``transfer().transact()`` from an unlocked account, receipt
awaited, for the EVM. The ratio says what Agora's layer (validation, local signing, gas
estimation so a bad transaction fails before it is sent) costs over the raw write.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from agora.agents.identity import Identity
from agora.chain import EscrowTerms, EVMLedger, Ledger, MemoryLedger
from agora.chain.types import owned_id


def rate(n: int, fn: Callable[[int], object]) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - start)


def setup(ledger: Ledger) -> tuple[Identity, Identity]:
    a, b = Identity.from_seed("bench", "a"), Identity.from_seed("bench", "b")
    for who in (a, b):
        ledger.open_account(who)
    ledger.mint(a.address, 10**30)
    return a, b


def escrow_cycle(ledger: Ledger, a: Identity, b: Identity, tag: str) -> Callable[[int], object]:
    def cycle(i: int) -> None:
        eid = owned_id(a.address, tag, i)
        terms = EscrowTerms(escrow_id=eid, payees=[b.address], shares_bps=[10_000], amount=1000, deadline=ledger.now() + 600)
        ledger.open_escrow(a, terms)
        ledger.release(a, eid, 900)

    return cycle


def raw_web3_transfer(ledger: EVMLedger) -> Callable[[int], object]:
    op, w3 = ledger.operator, ledger.w3
    ledger.mint(op, 10**30)
    to = Identity.from_seed("bench", "b").address

    def send(i: int) -> None:
        w3.eth.wait_for_transaction_receipt(ledger.token.functions.transfer(to, 1).transact({"from": op}))

    return send


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--rpc-url", default=None, help="also measure a JSON-RPC node (anvil)")
    args = parser.parse_args()
    n = args.n
    table = Table(title=f"Ledger writes per second (n={n}, one core, coincurve signing)")
    for col in ("backend", "operation", "Agora /s", "raw baseline /s", "Agora / raw"):
        table.add_column(col, justify="left" if col in ("backend", "operation") else "right")

    mem = MemoryLedger()
    a, b = setup(mem)
    balances: dict[str, int] = {a.address: 10**30}
    raw = rate(n * 50, lambda i: balances.__setitem__(a.address, balances[a.address] - 1))
    agora = rate(n * 50, lambda i: mem.transfer(a, b.address, 1))
    table.add_row("memory", "transfer", f"{agora:,.0f}", f"{raw:,.0f} (dict)", f"{agora / raw:.3f}")
    table.add_row("memory", "escrow open+release", f"{rate(n * 10, escrow_cycle(mem, a, b, 'e')):,.0f}", "-", "-")

    backends = [("embedded py-evm", EVMLedger.embedded)]
    if args.rpc_url:
        backends.append((f"JSON-RPC {args.rpc_url}", lambda: EVMLedger.connect(args.rpc_url)))
    for label, make in backends:
        ledger = make()
        a, b = setup(ledger)
        raw = rate(n, raw_web3_transfer(ledger))
        agora = rate(n, lambda i, ledger=ledger, a=a, b=b: ledger.transfer(a, b.address, 1))
        table.add_row(label, "transfer", f"{agora:,.1f}", f"{raw:,.1f} (web3 transact)", f"{agora / raw:.2f}")
        cycles = rate(max(1, n // 4), escrow_cycle(ledger, a, b, "f"))
        table.add_row(label, "escrow open+release", f"{cycles:,.1f}", "-", "-")
        assert ledger.is_conserved()
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
