"""``agora trace DEAL_ID``: one deal's story from a run's records.

For a whole deal (the full economy): the buyer's record of it (``deals.jsonl``: the job, the
bids, the signed contract and its payees, the metered bill, every ledger transaction), the
states its contract went through, and, where the run recorded messages (``metrics.messages``,
local runtime), every message of the deal's session in order. For an exchange's settlement
transaction (``agora trace 0xTX``): the trades that transaction settled. Addresses are shown
with the agents' names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from agora.simulations.errors import ReportError
from agora.simulations.recorder import read


def _names(out: Path) -> dict[str, str]:
    agents = read(out, "agents")
    names = dict(zip(agents["address"].to_pylist(), agents["agent"].to_pylist(), strict=False)) if agents.num_rows else {}
    return {k.lower(): v for k, v in names.items()}


def story(out: Path | str, key: str) -> dict[str, Any]:
    """Everything the run's records say about deal ``key`` (a deal id, or a settlement tx)."""
    out = Path(out)
    if not (out / "summary.json").exists():
        raise ReportError(f"{out} holds no run records (no summary.json)")
    key = key.lower()
    names = _names(out)
    deal = _find_deal(out, key)
    if deal is not None:
        messages = read(out, "messages")
        rows = messages.filter(pc.equal(messages["session"], key)).to_pylist() if messages.num_rows else []
        return {"kind": "deal", "deal": deal, "messages": rows, "names": names, "messages_recorded": (out / "messages.parquet").exists()}
    trades = read(out, "trades")
    hits = trades.filter(pc.equal(pc.utf8_lower(trades["tx"]), key)).to_pylist() if trades.num_rows else []
    if hits:
        return {"kind": "settlement", "trades": hits, "names": names}
    raise ReportError(f"no deal or settlement {key} in {out}")


def _find_deal(out: Path, key: str) -> dict[str, Any] | None:
    path = out / "deals.jsonl"
    if not path.exists():
        return None
    with path.open() as lines:
        for line in lines:
            record = json.loads(line)
            if record["deal_id"].lower() == key:
                return record
    return None


def _table(console: Any, title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    from rich.table import Table

    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def render(told: dict[str, Any]) -> None:
    """Print a story with rich."""
    from rich.console import Console

    console = Console()
    names = told["names"]
    who = lambda a: names.get(str(a).lower(), str(a)[:10] + "…")  # noqa: E731
    if told["kind"] == "settlement":
        _table(
            console,
            f"settlement {told['trades'][0]['tx']}",
            ("step", "t", "market", "buyer", "seller", "price", "qty"),
            [(str(t["step"]), f"{t['t']:.2f}", t["market"], who(t["buyer"]), who(t["seller"]), str(t["price"]), str(t["qty"])) for t in told["trades"]],
        )
        return
    deal = told["deal"]
    contract = deal.get("contract") or {}
    console.print(f"[bold]deal {deal['deal_id']}[/]  status [bold]{deal['status']}[/] {deal.get('reason') or ''}")
    provider = contract["payees"][0]["address"] if contract else ""
    console.print(f"buyer {who(deal['buyer'])} · provider {who(provider) if provider else '–'} · paid {deal['paid']:,} base units · step {deal['step']}")
    job = deal.get("job") or {}
    if job:
        console.print(
            f"job {job.get('job_id')}: {job.get('task')} with model {str(job.get('model_hash'))[:12]}… on {'dataset ' + str(job.get('dataset_hash'))[:12] + '…' if job.get('dataset_hash') else 'inline inputs'}, resources {job.get('resources')}"
        )
    if deal.get("bids"):
        console.print(
            "bids: "
            + ", ".join(f"{who(a)} {b:,}" for a, b in deal["bids"].items())
            + (f" · refused: {', '.join(who(a) for a in deal['refused'])}" if deal.get("refused") else "")
        )
    if told["messages"]:
        _table(
            console,
            f"messages ({len(told['messages'])})",
            ("t (s)", "from", "to", "message"),
            [(f"{m['t']:.3f}", who(m["sender"]), who(m["target"]), m["type"]) for m in told["messages"]],
        )
    elif not told["messages_recorded"]:
        console.print("[dim]messages were not recorded in this run (metrics.messages: true records them on the local runtime)[/]")
    if deal.get("history"):
        _table(
            console,
            "contract states",
            ("state", "by", "ledger time", "tx"),
            [(step["state"], who(step["by"]), str(step["at"]), (step.get("tx") or "")[:18]) for step in deal["history"]],
        )
    if deal.get("bill"):
        _table(
            console,
            "metered bill",
            ("payee", "role", "amount", "cap", "basis"),
            [(who(b["payee"]), b["role"], f"{int(b['amount']):,}", f"{int(b['cap']):,}", b["basis"]) for b in deal["bill"]],
        )
    if deal.get("receipts"):
        _table(
            console,
            "ledger transactions",
            ("op", "sender", "tx", "block", "gas"),
            [(r["op"], who(r["sender"]), r["tx_hash"][:18] + "…", str(r["block"]), f"{r['gas_used']:,}") for r in deal["receipts"]],
        )
