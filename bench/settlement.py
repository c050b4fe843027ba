"""Settlement paths compared: per-trade escrow, pay-per-call channels, netted batches.

    python bench/settlement.py [--trades 1000] [--agents 100] [--rpc-url URL] [--skip-escrow]

One seeded market: ``--agents`` agents (40% buyers, 30% providers, 20% model owners, 10% data
owners), ``--trades`` trades with 3 payees each (provider, model owner, data owner), arriving at
20 trades per second of chain time. Each buyer keeps a few partners (2 providers, 2 models, 1
dataset), as repeat pay-per-call customers do. Paths, all on the same ledger backend:

- escrow: per trade, open an escrow for the price and release it (2 transactions);
- channel: one channel per buyer-payee pair, one voucher per call (off-chain, EIP-712), each
  payee claims all its channels at the end in one transaction per 128 channels;
- batch: each buyer deposits once; every epoch (at most 10 s of chain time) each buyer signs one
  authorization over its netted lines, and one transaction pays every payee.

Gas per settled trade counts everything the path needs: approvals (escrow and channel paths;
batch deposits need none), deposits, channel opens, claims, settlements. The operator's minting
and gas funding are set-up and not counted. Trades/s
sustained is settled trades over the wall time of settling them, signatures included; "incl.
onboarding" adds the one-time work per account or relationship (approvals, deposits, channel
opens), whose gas is always counted.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

from agora.agents.identity import Identity
from agora.chain import ChannelClaim, ChannelTerms, EpochBuilder, EscrowTerms, EVMLedger, Ledger, MemoryLedger, voucher_typed_data
from agora.chain.types import owned_id

MILLI = 10**15
RATE = 20  # trades per second of chain time
EPOCH_S = 10


@dataclass
class Trade:
    at: float  # seconds of chain time since the start
    buyer: Identity
    payees: list[tuple[Identity, int]]  # provider first


@dataclass
class Result:
    path: str
    trades: int = 0
    gas: int = 0
    txs: int = 0
    seconds: float = 0.0  # steady-state work: settling the trades
    onboarding: float = 0.0  # one-time per account or relationship: approvals, deposits, channel opens
    notes: list[str] = field(default_factory=list)


def market(n_trades: int, n_agents: int, seed: int) -> tuple[dict[str, list[Identity]], list[Trade]]:
    rng = random.Random(seed)
    counts = {"buyer": 0.4, "provider": 0.3, "model": 0.2, "data": 0.1}
    agents = {role: [Identity.from_seed(seed, f"{role}-{i}") for i in range(max(1, int(n_agents * share)))] for role, share in counts.items()}
    partners = {b.address: (rng.sample(agents["provider"], 2), rng.sample(agents["model"], 2), rng.choice(agents["data"])) for b in agents["buyer"]}
    trades = []
    for i in range(n_trades):
        buyer = rng.choice(agents["buyer"])
        providers, models, data = partners[buyer.address]
        price = [rng.randint(2, 5) * MILLI, rng.randint(1, 2) * MILLI, MILLI]
        trades.append(Trade(at=i / RATE, buyer=buyer, payees=list(zip([rng.choice(providers), rng.choice(models), data], price, strict=False))))
    return agents, trades


def gas_of(receipts: list) -> tuple[int, int]:
    return sum(r.gas_used for r in receipts), len(receipts)


def prepare(ledger: Ledger, agents: dict[str, list[Identity]], trades: list[Trade]) -> None:
    """Set-up, not counted: the operator mints the buyers' tokens and funds everyone's gas."""
    spend: dict[str, int] = defaultdict(int)
    for t in trades:
        spend[t.buyer.address] += sum(p for _, p in t.payees)
    for buyer in agents["buyer"]:
        ledger.mint(buyer.address, 2 * spend[buyer.address] + MILLI)
    for who in (w for ws in agents.values() for w in ws):
        ledger.fund_gas(who.address)


def approvals(ledger: Ledger, trades: list[Trade]) -> list:
    """The escrow and channel contracts pull tokens: each buyer approves them once."""
    buyers = {t.buyer.address: t.buyer for t in trades}
    return [ledger.open_account(b) for _, b in sorted(buyers.items())]


def escrow_path(ledger: Ledger, trades: list[Trade]) -> Result:
    res = Result("escrow (per trade)")
    start = time.perf_counter()
    res.gas, res.txs = gas_of(approvals(ledger, trades))
    res.onboarding = time.perf_counter() - start
    start = time.perf_counter()
    for i, t in enumerate(trades):
        total = sum(p for _, p in t.payees)
        shares = [p * 10_000 // total for _, p in t.payees[1:]]
        terms = EscrowTerms(
            escrow_id=owned_id(t.buyer.address, i + 1),
            payees=[who.address for who, _ in t.payees],
            shares_bps=[10_000 - sum(shares), *shares],
            amount=total,
            deadline=ledger.now() + 3600,
        )
        receipts = [ledger.open_escrow(t.buyer, terms), ledger.release(t.buyer, terms.escrow_id, total)]
        g, n = gas_of(receipts)
        res.gas, res.txs, res.trades = res.gas + g, res.txs + n, res.trades + 1
    res.seconds = time.perf_counter() - start
    return res


def channel_path(ledger: Ledger, trades: list[Trade]) -> Result:
    res = Result("channel (voucher per call)")
    start = time.perf_counter()
    dom = ledger.domains()["channel"]
    owed: dict[tuple[str, str], int] = defaultdict(int)
    for t in trades:
        for who, price in t.payees:
            owed[(t.buyer.address, who.address)] += price
    by_addr = {t.buyer.address: t.buyer for t in trades} | {w.address: w for t in trades for w, _ in t.payees}
    ids = {pair: owned_id(pair[0], n + 1) for n, pair in enumerate(sorted(owed))}
    receipts = approvals(ledger, trades)
    expiration = ledger.now() + 86_400
    for (buyer, payee), amount in sorted(owed.items()):
        terms = ChannelTerms(channel_id=ids[(buyer, payee)], recipient=payee, amount=amount, expiration=expiration)
        receipts.append(ledger.open_channel(by_addr[buyer], terms))
    res.onboarding = time.perf_counter() - start
    start = time.perf_counter()
    spent: dict[tuple[str, str], int] = defaultdict(int)
    latest: dict[tuple[str, str], str] = {}
    for t in trades:  # one voucher per call and payee, cumulative
        for who, price in t.payees:
            pair = (t.buyer.address, who.address)
            spent[pair] += price
            latest[pair] = t.buyer.sign_typed_data(voucher_typed_data(dom, ids[pair], 0, spent[pair]))
    per_payee: dict[str, list[ChannelClaim]] = defaultdict(list)
    for pair, sig in latest.items():
        per_payee[pair[1]].append(ChannelClaim(channel_id=ids[pair], amount=spent[pair], signature=sig))
    for payee, claims in per_payee.items():
        for k in range(0, len(claims), 128):
            receipts.append(ledger.claim_channels(by_addr[payee], claims[k : k + 128]))
    res.gas, res.txs = gas_of(receipts)
    res.trades, res.seconds = len(trades), time.perf_counter() - start
    res.notes.append(f"{len(owed)} channels, {len(per_payee)} claimers")
    return res


def batch_path(ledger: Ledger, trades: list[Trade]) -> Result:
    res = Result("batch (netted epochs)")
    start = time.perf_counter()
    need: dict[str, int] = defaultdict(int)
    signer = {t.buyer.address: t.buyer for t in trades}
    for t in trades:
        need[t.buyer.address] += sum(p for _, p in t.payees)
    receipts = [ledger.deposit(signer[b], amount) for b, amount in sorted(need.items())]  # no approval needed
    res.onboarding = time.perf_counter() - start
    start = time.perf_counter()
    operator = next(iter(signer.values()))  # any account may submit an epoch
    epochs: dict[int, list[Trade]] = defaultdict(list)
    for t in trades:
        epochs[int(t.at // EPOCH_S)].append(t)
    t0 = ledger.now()
    for n, chunk in sorted(epochs.items()):
        ledger.sync_time(t0 + (n + 1) * EPOCH_S)  # the epoch closes after 10 s of chain time
        builder = EpochBuilder(n + 1, ledger.domains()["batch"])
        for t in chunk:
            builder.add(t.buyer.address, {who.address: price for who, price in t.payees})
        receipts.append(ledger.settle_batch(operator, builder.build(lambda b, typed: signer[b].sign_typed_data(typed))))
    res.gas, res.txs = gas_of(receipts)
    res.trades, res.seconds = len(trades), time.perf_counter() - start
    res.notes.append(f"{len(epochs)} epochs, {len(need)} deposits")
    return res


def run_backend(label: str, make, agents, trades, skip_escrow: bool) -> list[tuple[str, Result]]:
    rows = []
    paths = [channel_path, batch_path] if skip_escrow else [escrow_path, channel_path, batch_path]
    for path in paths:
        ledger = make()
        prepare(ledger, agents, trades)
        result = path(ledger, trades)
        assert ledger.is_conserved(), f"{label} {result.path}: money not conserved"
        rows.append((label, result))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trades", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rpc-url", default=None, help="also run on this JSON-RPC node (anvil)")
    parser.add_argument("--skip-escrow", action="store_true", help="skip the slow per-trade path")
    args = parser.parse_args()
    agents, trades = market(args.trades, args.agents, args.seed)
    backends = [("memory", MemoryLedger), ("embedded py-evm", EVMLedger.embedded)]
    if args.rpc_url:
        backends.append(("anvil", lambda: EVMLedger.connect(args.rpc_url)))
    rows = []
    for label, make in backends:
        rows += run_backend(label, make, agents, trades, args.skip_escrow)

    table = Table(title=f"{args.trades} trades among {args.agents} agents, 3 payees each")
    for col in ("backend", "path", "txs", "gas / trade", "trades/s sustained", "vs escrow", "trades/s incl. onboarding", "notes"):
        table.add_column(col, justify="left" if col in ("backend", "path", "notes") else "right")
    base: dict[str, float] = {}
    for label, r in rows:
        rate = r.trades / r.seconds
        overall = r.trades / (r.seconds + r.onboarding)
        base.setdefault(label, rate if r.path.startswith("escrow") else 0.0)
        ratio = f"{rate / base[label]:.1f}x" if base[label] else "-"
        table.add_row(label, r.path, str(r.txs), f"{r.gas / r.trades:,.0f}", f"{rate:,.1f}", ratio, f"{overall:,.1f}", "; ".join(r.notes))
    Console(width=180).print(table)


if __name__ == "__main__":
    main()
