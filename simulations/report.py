"""Render a trade report as rich tables: who paid and earned what, the transactions, timing."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from agora.simulations.demo import UNIT, TradeReport


def tokens(amount: int) -> str:
    """Base units as tokens, exactly (no float rounding)."""
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), UNIT)
    text = f"{whole}.{frac:018d}".rstrip("0").rstrip(".")
    return f"{sign}{text}"


def render(report: TradeReport, console: Console | None = None) -> None:
    console = console or Console(width=max(110, Console().width))  # the tables need ~105 columns
    deal = report.deal
    c = report.config
    names = {p.address: p.name for p in report.parties}
    console.rule(f"[bold]Agora trade[/] · runtime={c.runtime} · ledger={c.ledger} · seed={c.seed}")
    console.print(f"deal {deal.deal_id[:18]}…  status [bold]{deal.status}[/] {deal.reason}")
    if deal.bids or deal.refused:
        bids = ", ".join(f"{names.get(a, _short(a))} {tokens(p)}" for a, p in deal.bids.items())
        refused = ", ".join(names.get(a, _short(a)) for a in deal.refused)
        winner = names.get(deal.contract.provider, "?") if deal.contract else "none"
        console.print(f"bids (AGR): {bids or 'none'} · refused: {refused or 'none'} · awarded to {winner}")

    money = Table(title="Who paid and earned what (AGR)")
    for col in ("party", "role", "before", "after", "change", "expected", "ok", "gas used"):
        money.add_column(col, justify="right" if col in ("before", "after", "change", "expected", "gas used") else "left")
    for p in report.parties:
        change = p.after - p.before
        ok = "✓" if change == p.expected_change else "✗"
        money.add_row(p.name, p.role, tokens(p.before), tokens(p.after), tokens(change), tokens(p.expected_change), ok, f"{p.gas_used:,}")
    console.print(money)

    txs = Table(title="Ledger transactions")
    for col in ("op", "sender", "tx hash", "block", "gas used"):
        txs.add_column(col)
    for r in report.receipts:
        who = names.get(r.sender) or ("operator" if r.op in ("mint", "fund_gas") else _short(r.sender))
        txs.add_row(r.op, who, r.tx_hash[:18] + "…", str(r.block), f"{r.gas_used:,}")
    console.print(txs)

    if deal.result_shape:
        m = deal.metering
        console.print(
            f"embeddings {deal.result_shape[0]}×{deal.result_shape[1]} sha256 {deal.result_hash[:16]}… · "
            f"{m.get('items')} items, {m.get('tokens')} tokens in {m.get('seconds', 0):.2f} s on {m.get('device')} "
            f"(Ray GPU ids {m.get('gpu_ids') or '-'})"
        )
    if report.nearest:
        a, b, sim = report.nearest
        console.print(f"closest pair by the delivered embeddings (cos {sim:.3f}):\n  “{a}”\n  “{b}”")
    for line in deal.bill:
        who = names.get(line["payee"], _short(line["payee"]))
        console.print(f"bill: {who} ({line['role']}) {tokens(line['amount'])} AGR of at most {tokens(line['cap'])} — {line['basis']}")
    for access in report.data_access:
        verdict = "granted" if access["granted"] else f"refused ({access['reason']})"
        console.print(
            f"data vault: {access['action']} by {names.get(access['requester'], _short(access['requester']))} — {verdict}; "
            f"{access['items']} rows read in place, only the result left"
        )
    gas = sum(r.gas_used for r in report.receipts)
    console.print(f"total gas {gas:,} · supply {tokens(report.supply)} AGR · conserved: {'yes' if report.conserved else 'NO'} · wall {report.wall_s:.1f} s")
    for name, errs in report.errors.items():
        for e in errs:
            console.print(f"[yellow]{name}: {e}[/]")


def _short(address: str) -> str:
    return address[:8] + "…" if address.startswith("0x") else address
