"""``agora report OUT/``: a self-contained HTML report of a run, or a comparison of several.

One run folder (``summary.json`` beside the Parquet tables) gets: a summary table; per market,
prices over time against the competitive equilibrium (the step's band and single trades),
supply and demand curves at the first step and at each shock, volume, utilization and
allocative efficiency per step; the Lorenz curve of earnings per group; reputation over time;
and a table per group (units traded, mean price, share of agents that traded at all, surplus).
A folder of variants or sweep points (``variants.json`` / ``sweep.json``) gets each run's report
and, on top, the runs side by side: their summaries, their prices over time, and per group what
buyers paid and how many of them were served. Figures are PNGs inside the file: it opens
anywhere, offline.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from agora.simulations import plots
from agora.simulations.errors import ReportError
from agora.simulations.recorder import read

SCATTER_MAX = 20_000

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
.muted{color:#666}table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
td,th{border:1px solid #ddd;padding:.25rem .6rem;text-align:right}th{background:#f5f5f5}td:first-child,th:first-child{text-align:left}
img{max-width:100%;margin:.4rem 0}.row{display:flex;flex-wrap:wrap;gap:.5rem}.ok{color:#17803d;font-weight:600}.bad{color:#b3261e;font-weight:600}
"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "–" if value != value else f"{value:,.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if value is True:
        return '<span class="ok">yes</span>'
    if value is False:
        return '<span class="bad">NO</span>'
    return html.escape(str(value))


def _floats(table: pa.Table, name: str) -> list[float]:
    return pc.cast(table[name], pa.float64()).to_pylist() if table.num_rows else []


def _page(title: str, body: str) -> str:
    return f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{CSS}</style></head><body>{body}</body></html>"


# -- one run -------------------------------------------------------------------------------
def run_report(out: Path) -> str:
    summary = json.loads((out / "summary.json").read_text())
    steps, agents, schedule = read(out, "steps"), read(out, "agents"), read(out, "schedule")
    shocks = json.loads((out / "shocks.json").read_text()) if (out / "shocks.json").exists() else []
    parts = [f"<h1>{html.escape(summary['name'])} <span class='muted'>· {html.escape(summary['variant'])}</span></h1>"]
    parts.append(_summary_table(summary))
    markets = sorted(set(steps["market"].to_pylist())) if steps.num_rows else []
    if markets:
        trades = read(out, "trades").select(["step", "t", "market", "price", "qty"])  # read once for every market
        for market in markets:
            parts.append(_market_section(trades.filter(pc.equal(trades["market"], market)), market, steps, schedule, shocks, summary))
    parts.append(_earnings_section(agents, schedule))
    parts.append(_groups_section(agents, schedule))
    return _page(f"{summary['name']} report", "".join(parts))


def _summary_table(s: dict[str, Any]) -> str:
    rows = [
        ["runtime / ledger", f"{s['runtime']} / {s['ledger']}"],
        ["seed", s["seed"]],
        ["agents", s["agents"]],
        ["steps", s["steps"]],
        ["trades settled", s["trades"]],
        ["units traded", s["volume"]],
        ["turnover (base units)", int(s["turnover"])],
        ["mean allocative efficiency", s["mean_efficiency"] if s["mean_efficiency"] is not None else float("nan")],
        ["tokens minted / supply at the end", f"{int(s['minted']):,} / {int(s['supply']):,}"],
        ["money conserved", bool(s["conserved"])],
        ["handler errors", s["errors"]],
        ["wall time (s)", float(s["wall_s"])],
    ]
    for shock in s.get("shocks", []):
        rows.append([f"shock {shock['index']} ({shock['kind']}) {shock['event']}", f"t = {shock['at']:.1f} s, {shock['targets']} agents"])
    return "<h2>Summary</h2>" + _table(["", ""], rows)


def _market_section(trades: pa.Table, market: str, steps: pa.Table, schedule: pa.Table, shocks: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    """``trades``: this market's trades."""
    rows = steps.filter(pc.equal(steps["market"], market))
    t = _floats(rows, "t")
    series = {k: _floats(rows, k) for k in ("vwap", "min_price", "max_price", "eq_low", "eq_high")}
    scatter_t, scatter_p = _trade_sample(trades)
    s = {
        "t": t,
        "vwap": series["vwap"],
        "min": series["min_price"],
        "max": series["max_price"],
        "eq_low": series["eq_low"],
        "eq_high": series["eq_high"],
        "scatter_t": scatter_t,
        "scatter_p": scatter_p,
    }
    parts = [f"<h2>Market: {html.escape(market)}</h2>", _img(plots.price_over_time({market: s}), f"{market} prices")]
    curves = _curves(trades, market, schedule, shocks, summary)
    if curves:
        parts.append("<div class='row'>" + "".join(curves) + "</div>")
    parts.append(_img(plots.lines(t, {"units traded": _floats(rows, "volume")}, "Volume per step", "units", kind="bar"), "volume"))
    eff = {"utilization of offered units": _floats(rows, "utilization")}
    if any(x == x for x in _floats(rows, "efficiency")):
        eff["allocative efficiency"] = _floats(rows, "efficiency")
    parts.append(_img(plots.lines(t, eff, "Utilization and efficiency per step", "share", ylim=(0, 1.05)), "utilization"))
    return "".join(parts)


def _trade_sample(trades: pa.Table) -> tuple[list[float], list[float]]:
    if trades.num_rows > SCATTER_MAX:
        stride = trades.num_rows // SCATTER_MAX + 1
        trades = trades.take(list(range(0, trades.num_rows, stride)))
    return _floats(trades, "t"), _floats(trades, "price")


def _curves(trades: pa.Table, market: str, schedule: pa.Table, shocks: list[dict[str, Any]], summary: dict[str, Any]) -> list[str]:
    """Supply and demand at the first step and at the start of each shock."""
    from agora.simulations.director import PlannedShock
    from agora.simulations.meter import Holder, MarketMeter

    rows = schedule.filter(pc.equal(schedule["market"], market)).to_pylist() if schedule.num_rows else []
    if not rows:
        return []
    step = float(summary.get("step_s") or 1.0)
    meter = MarketMeter(
        market, [Holder(r["address"], r["agent"], r["group"], r["side"], r["limit"], r["units"]) for r in rows], [PlannedShock(**s) for s in shocks], step
    )
    picks = [0] + sorted({int(s["at"] // step) for s in shocks if s["at"] // step < summary["steps"]})
    figures = []
    for k in picks[:3]:
        values, costs = (a.tolist() for a in meter.schedule(k))
        at = trades.filter(pc.equal(trades["step"], k)) if trades.num_rows else trades
        prices = [p for p, q in zip(_floats(at, "price"), at["qty"].to_pylist(), strict=False) for _ in range(int(q))]
        label = "first step" if k == 0 else "shock"
        figures.append(_img(plots.supply_demand(values, costs, prices, f"{market}: supply and demand, step {k} ({label})"), f"curves step {k}"))
    return figures


def _earnings(agents: pa.Table, schedule: pa.Table) -> dict[str, dict[str, float]]:
    """group -> agent -> earnings at the last sample: a seller's turnover; for others the
    balance gained since the first sample (never below 0)."""
    if not agents.num_rows:
        return {}
    sides = dict(zip(schedule["address"].to_pylist(), schedule["side"].to_pylist(), strict=False)) if schedule.num_rows else {}
    last = agents.filter(pc.equal(agents["step"], pc.max(agents["step"])))
    first = agents.filter(pc.equal(agents["step"], pc.min(agents["step"])))
    start = dict(zip(first["address"].to_pylist(), _floats(first, "balance"), strict=False))
    out: dict[str, dict[str, float]] = {}
    for r, balance, turnover in zip(last.to_pylist(), _floats(last, "balance"), _floats(last, "turnover"), strict=False):
        side = sides.get(r["address"])
        if side == "buy":
            continue
        earned = turnover if side == "sell" else max(0.0, balance - start.get(r["address"], balance))
        out.setdefault(r["group"], {})[r["agent"]] = earned
    return {g: e for g, e in out.items() if any(e.values())}


def _earnings_section(agents: pa.Table, schedule: pa.Table) -> str:
    groups = _earnings(agents, schedule)
    parts = ["<h2>Earnings and reputation</h2><div class='row'>"]
    if groups:
        parts.append(_img(plots.lorenz({g: list(e.values()) for g, e in groups.items()}, "Lorenz curve of earnings"), "lorenz"))
    if agents.num_rows:
        by: dict[str, dict[int, list[float]]] = {}
        for step, group, rep in zip(agents["step"].to_pylist(), agents["group"].to_pylist(), _floats(agents, "reputation"), strict=False):
            by.setdefault(group, {}).setdefault(step, []).append(rep)
        steps = sorted({s for g in by.values() for s in g})
        ys = {g: [sum(v.get(s, [0.0])) / max(1, len(v.get(s, [0.0]))) for s in steps] for g, v in by.items()}
        parts.append(_img(plots.lines([float(s) for s in steps], ys, "Mean reputation per group (relative trust)", "trust", ylim=(0, 1.05)), "reputation"))
    return "".join(parts) + "</div>"


def group_stats(agents: pa.Table, schedule: pa.Table) -> list[dict[str, Any]]:
    """Per group at the last sample: agents, units traded, mean price, share that traded, surplus."""
    if not agents.num_rows:
        return []
    sides = dict(zip(schedule["address"].to_pylist(), schedule["side"].to_pylist(), strict=False)) if schedule.num_rows else {}
    last = agents.filter(pc.equal(agents["step"], pc.max(agents["step"])))
    acc: dict[str, dict[str, Any]] = {}
    for r, turnover, surplus in zip(last.to_pylist(), _floats(last, "turnover"), _floats(last, "surplus"), strict=False):
        g = acc.setdefault(
            r["group"],
            {
                "group": r["group"],
                "role": r["role"],
                "side": sides.get(r["address"], ""),
                "agents": 0,
                "traded": 0,
                "turnover": 0.0,
                "served": 0,
                "surplus": 0.0,
            },
        )
        g["agents"] += 1
        g["traded"] += int(r["traded"])
        g["turnover"] += turnover
        g["served"] += 1 if r["traded"] else 0
        g["surplus"] += surplus
    for g in acc.values():
        g["mean_price"] = g["turnover"] / g["traded"] if g["traded"] else float("nan")
        g["served_share"] = g["served"] / g["agents"]
    return sorted(acc.values(), key=lambda g: g["group"])


def _groups_section(agents: pa.Table, schedule: pa.Table) -> str:
    stats = group_stats(agents, schedule)
    if not stats:
        return ""
    rows = [[g["group"], g["role"], g["side"], g["agents"], g["traded"], g["mean_price"], g["served_share"], g["surplus"]] for g in stats]
    return "<h2>Groups</h2>" + _table(["group", "role", "side", "agents", "units traded", "mean price", "share that traded", "surplus"], rows)


# -- several runs --------------------------------------------------------------------------
def runs_in(out: Path) -> list[Path]:
    if (out / "summary.json").exists():
        return [out]
    for index in ("variants.json", "sweep.json"):
        if (out / index).exists():
            return [p for p in sorted(out.iterdir()) if (p / "summary.json").exists()]
    return []


def compare_report(out: Path, runs: list[Path]) -> str:
    summaries = {p.name: json.loads((p / "summary.json").read_text()) for p in runs}
    name = next(iter(summaries.values()))["name"]
    parts = [f"<h1>{html.escape(name)}: {len(runs)} runs side by side</h1>"]
    params: dict[str, str] = {}
    if (out / "sweep.json").exists():
        index = json.loads((out / "sweep.json").read_text())
        params = {p["name"]: ", ".join(f"{k}={v}" for k, v in p["overrides"].items() if k not in ("variants", "runtime.kind")) for p in index["points"]}
    eff = {k: s["mean_efficiency"] if s["mean_efficiency"] is not None else float("nan") for k, s in summaries.items()}
    rows = [
        [k, params.get(k, ""), s["trades"], s["volume"], int(s["turnover"]), eff[k], bool(s["conserved"]), float(s["wall_s"])] for k, s in summaries.items()
    ]
    parts.append(_table(["run", "parameters", "trades", "units", "turnover", "mean efficiency", "conserved", "wall s"], rows))
    labels = list(summaries)
    parts.append("<div class='row'>")
    parts.append(
        _img(
            plots.bars(labels, {"mean allocative efficiency": [eff[k] if eff[k] == eff[k] else 0.0 for k in labels]}, "Efficiency, run by run", "share"),
            "efficiency compared",
        )
    )
    parts.append(_img(plots.bars(labels, {"units traded": [float(summaries[k]["volume"]) for k in labels]}, "Volume, run by run", "units"), "volume compared"))
    parts.append("</div>")
    parts.append("<p>" + " · ".join(f"<a href='{html.escape(p.name)}/report.html'>{html.escape(p.name)}</a>" for p in runs) + "</p>")
    series = {}
    for p in runs:
        steps = read(p, "steps")
        markets = sorted(set(steps["market"].to_pylist())) if steps.num_rows else []
        for market in markets[:1]:
            rows_m = steps.filter(pc.equal(steps["market"], market))
            series[f"{p.name}"] = {
                "t": _floats(rows_m, "t"),
                "vwap": _floats(rows_m, "vwap"),
                "min": _floats(rows_m, "vwap"),
                "max": _floats(rows_m, "vwap"),
                "eq_low": _floats(rows_m, "eq_low"),
                "eq_high": _floats(rows_m, "eq_high"),
            }
    if series:
        parts.append(_img(plots.price_over_time(series, "Mean price paid per step, run by run"), "prices compared"))
    stats = {p.name: {g["group"]: g for g in group_stats(read(p, "agents"), read(p, "schedule"))} for p in runs}
    buyer_groups = sorted({g for s in stats.values() for g, v in s.items() if v["side"] == "buy"})
    if buyer_groups:
        price = {run: [s.get(g, {}).get("mean_price", float("nan")) for g in buyer_groups] for run, s in stats.items()}
        served = {run: [s.get(g, {}).get("served_share", 0.0) for g in buyer_groups] for run, s in stats.items()}
        parts.append("<h2>Buyers, run by run</h2><div class='row'>")
        parts.append(_img(plots.bars(buyer_groups, price, "Mean price buyers paid", "base units / unit"), "prices paid"))
        parts.append(_img(plots.bars(buyer_groups, served, "Share of buyers served (traded at least once)", "share"), "access"))
        parts.append("</div>")
        rows = [
            [run, g, s[g]["agents"], s[g]["traded"], s[g]["mean_price"], s[g]["served_share"], s[g]["surplus"]]
            for run, s in stats.items()
            for g in buyer_groups
            if g in s
        ]
        parts.append(_table(["run", "group", "agents", "units bought", "mean price", "share served", "surplus"], rows))
    return _page(f"{name}: comparison", "".join(parts))


def write_report(out: Path | str) -> Path:
    """Write ``report.html`` in ``out`` (and in each run folder under it); returns its path."""
    out = Path(out)
    runs = runs_in(out)
    if not runs:
        raise ReportError(f"{out} holds no run records (no summary.json, variants.json or sweep.json)")
    for run in runs:
        (run / "report.html").write_text(run_report(run))
    if runs != [out]:
        (out / "report.html").write_text(compare_report(out, runs))
    return out / "report.html"
