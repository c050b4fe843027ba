"""Runs end to end: the same seed replays the same records; trades respect every trader's limit
and budget; money is conserved; shocks move the market the way they should; posted prices obey
data policies; an open market widens access; the report and the CLI work on real records."""

from __future__ import annotations

import json

import pyarrow.compute as pc
import pytest

from agora.simulations.recorder import read
from agora.simulations.runner import simulate
from agora.simulations.scenario import Scenario

TINY = {
    "name": "tiny",
    "seed": 1,
    "duration": 60,
    "step": 10,
    "markets": {"gpu": {"mechanism": "cda", "rounds": 8, "ceiling": 200}},
    "agents": [
        {
            "role": "trader",
            "count": 10,
            "name": "s-{i}",
            "label": "sellers",
            "settings": {"market": "gpu", "side": "sell", "units": 2},
            "draws": {"limit": {"uniform": [10, 80]}},
            "strategy": {"kind": "zic"},
        },
        {
            "role": "trader",
            "count": 10,
            "name": "b-{i}",
            "label": "buyers",
            "funds": 5_000,
            "settings": {"market": "gpu", "side": "buy", "units": 2},
            "draws": {"limit": {"uniform": [30, 120]}},
            "strategy": {"kind": "zic"},
        },
    ],
}


def _limits(out) -> dict[str, tuple[str, int]]:
    s = read(out, "schedule")
    return {a: (side, lim) for a, side, lim in zip(s["address"].to_pylist(), s["side"].to_pylist(), s["limit"].to_pylist(), strict=False)}


def test_a_seeded_run_replays_exactly_and_trades_within_limits(tmp_path) -> None:
    scenario = Scenario.parse(TINY)
    [first] = simulate(scenario, tmp_path / "a", progress=False)
    [again] = simulate(scenario, tmp_path / "b", progress=False)
    a, b = read(tmp_path / "a", "trades"), read(tmp_path / "b", "trades")
    assert a.num_rows == first.trades > 20 and a.equals(b)  # same seed, same trades, row for row
    assert read(tmp_path / "a", "steps").equals(read(tmp_path / "b", "steps"))
    assert first.conserved and first.errors == 0 and first.steps == 6
    limits = _limits(tmp_path / "a")
    for buyer, seller, price in zip(a["buyer"].to_pylist(), a["seller"].to_pylist(), pc.cast(a["price"], "int64").to_pylist(), strict=False):
        assert limits[seller][0] == "sell" and limits[buyer][0] == "buy"
        assert limits[seller][1] <= price <= limits[buyer][1]  # ZI-C never trades at a loss
    per_step = {}
    for step, qty, seller in zip(a["step"].to_pylist(), a["qty"].to_pylist(), a["seller"].to_pylist(), strict=False):
        per_step[(step, seller)] = per_step.get((step, seller), 0) + qty
    assert max(per_step.values()) <= 2  # never more than its units in a period
    different = simulate(scenario.with_overrides({"seed": 2}), tmp_path / "c", progress=False)[0]
    assert not read(tmp_path / "c", "trades").equals(a) and different.conserved


def test_money_follows_the_trades_on_the_ledger(tmp_path) -> None:
    [summary] = simulate(Scenario.parse(TINY), tmp_path, progress=False)
    trades, agents = read(tmp_path, "trades"), read(tmp_path, "agents")
    paid: dict[str, int] = {}
    for buyer, seller, price, qty in zip(
        trades["buyer"].to_pylist(), trades["seller"].to_pylist(), pc.cast(trades["price"], "int64").to_pylist(), trades["qty"].to_pylist(), strict=False
    ):
        paid[buyer] = paid.get(buyer, 0) - price * qty
        paid[seller] = paid.get(seller, 0) + price * qty
    last = agents.filter(pc.equal(agents["step"], 5))
    for address, group, balance in zip(last["address"].to_pylist(), last["group"].to_pylist(), pc.cast(last["balance"], "int64").to_pylist(), strict=False):
        funds = 5_000 if group == "buyers" else 0
        assert balance == funds + paid.get(address, 0)  # every balance is its funds plus its trades
    assert int(summary.minted) == int(summary.supply) == 50_000 and summary.conserved


def test_an_outage_cuts_supply_and_raises_the_equilibrium(tmp_path) -> None:
    shocked = Scenario.parse({**TINY, "shocks": [{"at": 20, "kind": "outage", "target": "sellers", "fraction": 0.5, "duration": 20}]})
    [summary] = simulate(shocked, tmp_path, progress=False)
    steps = read(tmp_path, "steps").to_pylist()
    offered = [r["offered"] for r in steps]
    assert offered == [20, 20, 10, 10, 20, 20]  # half the sellers out for two steps
    assert min(steps[2]["eq_low"], steps[3]["eq_low"]) >= steps[0]["eq_low"]
    assert [s["event"] for s in summary.shocks] == ["start", "end"] and summary.shocks[0]["targets"] == 5
    trades = read(tmp_path, "trades")
    out = set(json.loads((tmp_path / "shocks.json").read_text())[0]["targets"])
    # after the round the outage began in (an order may meet a bid before the news arrives),
    # the sellers out of the market sold nothing until it ended
    during = trades.filter(pc.and_(pc.greater(trades["t"], 20 + 10 / 8 + 1e-6), pc.less(trades["step"], 4)))
    assert during.num_rows and not out & set(during["seller"].to_pylist())


def test_a_demand_spike_and_a_price_shock(tmp_path) -> None:
    spiked = Scenario.parse(
        {
            **TINY,
            "shocks": [
                {"at": 30, "kind": "demand_spike", "target": "buyers", "factor": 2},
                {"at": 30, "kind": "price_shock", "target": "sellers", "factor": 0.5},
            ],
        }
    )
    simulate(spiked, tmp_path, progress=False)
    steps = read(tmp_path, "steps").to_pylist()
    assert [r["demanded"] for r in steps] == [20, 20, 20, 40, 40, 40]
    assert steps[3]["eq_high"] < steps[2]["eq_high"] or steps[3]["eq_qty"] > steps[2]["eq_qty"]


def test_a_call_market_and_efficiency_of_zic_on_the_cda(tmp_path) -> None:
    [cda] = simulate(Scenario.parse(TINY).with_overrides({"markets.gpu.rounds": 20}), tmp_path / "cda", progress=False)
    [call] = simulate(Scenario.parse(TINY).with_overrides({"markets.gpu.mechanism": "call"}), tmp_path / "call", progress=False)
    assert cda.mean_efficiency > 0.85  # Gode and Sunder: budget-constrained zero intelligence is efficient
    assert call.trades > 0 and call.conserved
    trades = read(tmp_path / "call", "trades")
    rounds = {}
    for _step, t, price in zip(trades["step"].to_pylist(), trades["t"].to_pylist(), pc.cast(trades["price"], "int64").to_pylist(), strict=False):
        rounds.setdefault(round(t, 6), set()).add(price)
    assert all(len(prices) == 1 for prices in rounds.values())  # each call clears at one uniform price


def test_posted_prices_respect_data_policies(tmp_path) -> None:
    [summary] = simulate(Scenario.load("data-market").with_overrides({"duration": 120}), tmp_path, progress=False)
    trades, schedule = read(tmp_path, "trades"), read(tmp_path, "schedule")
    group = dict(zip(schedule["address"].to_pylist(), schedule["group"].to_pylist(), strict=False))
    pairs = {(group[b], group[s]) for b, s in zip(trades["buyer"].to_pylist(), trades["seller"].to_pylist(), strict=False)}
    assert ("minilm-users", "strict-owners") in pairs and ("llm-users", "open-owners") in pairs
    assert ("llm-users", "strict-owners") not in pairs  # a policy that admits only MiniLM keeps the LLM out
    assert summary.conserved and summary.markets["data"]["unmatched_buys"] > 0


def test_posted_sellers_reprice_with_demand(tmp_path) -> None:
    simulate(Scenario.load("model-market").with_overrides({"duration": 250}), tmp_path, progress=False)
    agents = read(tmp_path, "agents")
    trades = read(tmp_path, "trades")
    vwap = {}
    for step, price, qty in zip(trades["step"].to_pylist(), pc.cast(trades["price"], "int64").to_pylist(), trades["qty"].to_pylist(), strict=False):
        v, q = vwap.get(step, (0, 0))
        vwap[step] = (v + price * qty, q + qty)
    before = sum(v / q for s, (v, q) in vwap.items() if 15 <= s < 20) / 5
    spike = sum(v / q for s, (v, q) in vwap.items() if 21 <= s < 25) / 4
    assert spike > before  # demand doubles at 200 s: adaptive sellers raise their prices
    assert agents.num_rows


def test_an_open_market_widens_access_for_low_budget_buyers(tmp_path) -> None:
    results = simulate(Scenario.load("access").with_overrides({"duration": 200}), tmp_path, progress=False)
    assert [r.variant for r in results] == ["open-market", "centralized"] and all(r.conserved for r in results)
    from agora.simulations.htmlreport import group_stats

    stats = {r.variant: {g["group"]: g for g in group_stats(read(tmp_path / r.variant, "agents"), read(tmp_path / r.variant, "schedule"))} for r in results}
    assert stats["open-market"]["low-budget"]["served_share"] > stats["centralized"]["low-budget"]["served_share"]
    assert stats["open-market"]["well-funded"]["mean_price"] < stats["centralized"]["well-funded"]["mean_price"]
    assert json.loads((tmp_path / "variants.json").read_text())["variants"] == ["open-market", "centralized"]


def test_the_report_shows_the_run(tmp_path) -> None:
    import re

    from agora.simulations.errors import ReportError
    from agora.simulations.htmlreport import write_report

    shocked = Scenario.parse({**TINY, "shocks": [{"at": 20, "kind": "outage", "target": "sellers", "fraction": 0.5, "duration": 20}]})
    simulate(shocked, tmp_path, progress=False)
    page = write_report(tmp_path).read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) >= 7  # prices, two supply/demand curves, volume, utilization, Lorenz, reputation
    for needle in ("Market: gpu", 'alt="curves step 0"', 'alt="curves step 2"', "money conserved", "shock 0 (outage) start", "sellers", "buyers"):
        assert needle in page, needle
    assert all(__import__("base64").b64decode(i).startswith(b"\x89PNG") for i in images)
    assert "<script" not in page  # self-contained, nothing to fetch
    with pytest.raises(ReportError, match="holds no run records"):
        write_report(tmp_path / "empty")


def test_the_cli_simulates_lists_and_reports(tmp_path) -> None:
    import yaml
    from typer.testing import CliRunner

    from agora.simulations.cli import app

    runner = CliRunner()
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    done = runner.invoke(app, ["simulate", str(tmp_path / "tiny.yaml"), "--out", str(tmp_path / "run"), "--seed", "4", "--set", "agents.buyers.count=6"])
    assert done.exit_code == 0, done.output
    assert "Runs" in done.output and (tmp_path / "run" / "report.html").exists()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["seed"] == 4 and summary["agents"] == 16 and summary["conserved"]
    listed = runner.invoke(app, ["scenarios"])
    assert listed.exit_code == 0 and all(n in listed.output for n in ("gpu-market", "model-market", "data-market", "full-economy", "access"))
    bad = runner.invoke(app, ["simulate", str(tmp_path / "tiny.yaml"), "--set", "agents.buyers.count=-1", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "agents[1].count" in bad.output and not (tmp_path / "x").exists()  # refused before anything ran
    again = runner.invoke(app, ["report", str(tmp_path / "run")])
    assert again.exit_code == 0 and "report.html" in again.output


@pytest.mark.ray
@pytest.mark.slow
def test_a_sweep_spreads_points_over_ray_and_resumes(ray_cluster, tmp_path) -> None:
    import shutil

    from agora.simulations.sweep import sweep

    scenario = Scenario.parse(TINY)
    params = {"markets.gpu.mechanism": ["cda", "call"], "seed": [1, 2]}
    results = sweep(scenario, params, tmp_path, progress=False)
    names = [p["name"] for p in json.loads((tmp_path / "sweep.json").read_text())["points"]]
    assert names == ["p000-mechanism=cda-seed=1", "p001-mechanism=cda-seed=2", "p002-mechanism=call-seed=1", "p003-mechanism=call-seed=2"]
    assert [r.seed for r in results] == [1, 2, 1, 2] and all(r.conserved and r.trades for r in results)
    [alone] = simulate(scenario.with_overrides({"markets.gpu.mechanism": "call", "seed": 2}), tmp_path / "alone", progress=False)
    assert read(tmp_path / names[3], "trades").equals(read(tmp_path / "alone", "trades"))  # a Ray task replays a local run exactly
    stamps = {n: (tmp_path / n / "summary.json").stat().st_mtime_ns for n in names}
    shutil.rmtree(tmp_path / names[1])
    again = sweep(scenario, params, tmp_path, progress=False)
    assert [r.trades for r in again] == [r.trades for r in results]
    assert {n: (tmp_path / n / "summary.json").stat().st_mtime_ns for n in names if n != names[1]} == {
        n: t for n, t in stamps.items() if n != names[1]
    }  # finished points not redone
    from agora.simulations.htmlreport import write_report

    assert "p003-mechanism=call-seed=2" in write_report(tmp_path).read_text()


def test_a_sweep_refuses_a_bad_point_before_running(tmp_path) -> None:
    from agora.simulations.errors import ScenarioError
    from agora.simulations.sweep import sweep

    with pytest.raises(ScenarioError, match=r"markets.gpu.mechanism: mechanism is one of call, cda, posted \(or one you register\)"):
        sweep(Scenario.parse(TINY), {"markets.gpu.mechanism": ["cda", "barter"]}, tmp_path, parallel=False, progress=False)
    assert not any(p.is_dir() for p in tmp_path.iterdir())


@pytest.mark.ray
@pytest.mark.slow
def test_the_same_scenario_runs_on_the_ray_runtime(ray_cluster, tmp_path) -> None:
    """The same traders and exchange in shard actors, on the wall clock: trades settle within
    every limit, and the ledger conserves every token."""
    on_ray = Scenario.parse({**TINY, "duration": 6, "step": 2, "markets": {"gpu": {"mechanism": "cda", "rounds": 2}}, "runtime": {"kind": "ray", "shards": 2}})
    [summary] = simulate(on_ray, tmp_path, progress=False)
    assert summary.runtime == "ray" and summary.conserved and summary.errors == 0
    trades = read(tmp_path, "trades")
    assert trades.num_rows == summary.trades > 0
    limits = _limits(tmp_path)
    for buyer, seller, price in zip(trades["buyer"].to_pylist(), trades["seller"].to_pylist(), pc.cast(trades["price"], "int64").to_pylist(), strict=False):
        assert limits[seller][1] <= price <= limits[buyer][1]
    assert read(tmp_path, "agents").num_rows == 20 * 3


@pytest.mark.slow
def test_the_full_economy_settles_real_deals_and_traces_them(tmp_path) -> None:
    """All four roles with real MiniLM inference: deals settle with metered bills, money is
    conserved, providers that delivered gain reputation, and a deal's story can be told."""
    from typer.testing import CliRunner

    from agora.simulations.cli import app

    [summary] = simulate(Scenario.load("full-economy"), tmp_path, progress=False)
    assert summary.conserved and summary.errors == 0
    deals = [json.loads(line) for line in (tmp_path / "deals.jsonl").read_text().splitlines()]
    settled = [d for d in deals if d["status"] == "settled"]
    assert len(settled) >= 5 and {d["step"] for d in settled} != {settled[0]["step"]}  # demand came over time
    for d in settled:
        assert (
            sum(int(line["amount"]) for line in d["bill"])
            == d["paid"]
            <= d["contract"]["payees"][0]["amount"] + sum(int(p["amount"]) for p in d["contract"]["payees"][1:])
        )
        assert [s["state"] for s in d["history"]][-1] == "settled"
    steps = read(tmp_path, "steps")
    assert set(steps["market"].to_pylist()) == {"gpu", "deals"}
    agents = read(tmp_path, "agents")
    last = agents.filter(pc.equal(agents["step"], summary.steps - 1)).to_pylist()
    providers = {settled_d["contract"]["payees"][0]["address"] for settled_d in settled}
    assert all(r["reputation"] > 0 for r in last if r["address"] in providers)
    told = CliRunner().invoke(app, ["trace", settled[0]["deal_id"], "--out", str(tmp_path)])
    assert told.exit_code == 0, told.output
    for needle in ("CallForProposals", "AwardContract", "Deliver", "funded", "settled", "release_items", "metered bill"):
        assert needle in told.output, needle
    missing = CliRunner().invoke(app, ["trace", "0x" + "ab" * 32, "--out", str(tmp_path)])
    assert missing.exit_code == 2 and "no deal or settlement" in missing.output


@pytest.mark.chain
def test_memory_and_the_embedded_chain_give_the_same_market(tmp_path) -> None:
    """Money follows identical rules on both ledgers: one seeded market run on the memory ledger
    and on the embedded EVM settles the same trades and ends with the same balances."""
    small = {**TINY, "duration": 30, "markets": {"gpu": {"mechanism": "cda", "rounds": 4}}}
    [memory] = simulate(Scenario.parse(small), tmp_path / "memory", progress=False)
    [evm] = simulate(Scenario.parse({**small, "ledger": "embedded"}), tmp_path / "evm", progress=False)
    keep = ["step", "t", "market", "buyer", "seller", "price", "qty"]
    assert read(tmp_path / "memory", "trades").select(keep).equals(read(tmp_path / "evm", "trades").select(keep))
    assert read(tmp_path / "memory", "agents").select(["agent", "balance"]).equals(read(tmp_path / "evm", "agents").select(["agent", "balance"]))
    assert memory.conserved and evm.conserved and memory.trades == evm.trades > 0


COHORTS = {
    **TINY,
    "markets": {"gpu": {"mechanism": "call", "rounds": 4}},
    "agents": [
        {**TINY["agents"][0], "host": "cohort", "count": 300},
        {**TINY["agents"][1], "host": "cohort", "count": 300},
        {
            "role": "trader",
            "name": "lone-buyer",
            "label": "lone",
            "funds": 5_000,
            "settings": {"market": "gpu", "side": "buy", "units": 3, "limit": 150},
            "strategy": {"kind": "zic"},
        },
    ],
}


def test_cohorts_trade_beside_lone_traders_each_member_on_its_own_account(tmp_path) -> None:
    shocked = Scenario.parse({**COHORTS, "shocks": [{"at": 20, "kind": "outage", "target": "sellers", "fraction": 0.5, "duration": 20}]})
    [summary] = simulate(shocked, tmp_path, progress=False)
    assert summary.agents == 601 and summary.conserved and summary.errors == 0 and summary.trades > 300
    trades, agents = read(tmp_path, "trades"), read(tmp_path, "agents")
    limits = _limits(tmp_path)
    paid: dict[str, int] = {}
    for buyer, seller, price, qty in zip(
        trades["buyer"].to_pylist(), trades["seller"].to_pylist(), pc.cast(trades["price"], "int64").to_pylist(), trades["qty"].to_pylist(), strict=False
    ):
        assert limits[seller][1] <= price <= limits[buyer][1]  # ZI-C within every member's limit
        paid[buyer] = paid.get(buyer, 0) - price * qty
        paid[seller] = paid.get(seller, 0) + price * qty
    last = agents.filter(pc.equal(agents["step"], 5))
    for address, group, balance, _traded in zip(
        last["address"].to_pylist(), last["group"].to_pylist(), pc.cast(last["balance"], "int64").to_pylist(), last["traded"].to_pylist(), strict=False
    ):
        assert balance == (5_000 if group in ("buyers", "lone") else 0) + paid.get(address, 0)  # each member's own account
    assert "lone-buyer" in set(agents["agent"].to_pylist())
    lone = [a for a, g in zip(last["address"].to_pylist(), last["group"].to_pylist(), strict=False) if g == "lone"][0]
    assert lone in set(trades["buyer"].to_pylist())  # a lone trader trades in the same calls as the cohorts
    steps = read(tmp_path, "steps").to_pylist()
    assert [r["offered"] for r in steps] == [600, 600, 300, 300, 600, 600]  # half the sellers out for two steps
    out = set(json.loads((tmp_path / "shocks.json").read_text())[0]["targets"])
    late = trades.filter(pc.and_(pc.greater(trades["t"], 20 + 10 / 4 + 1e-6), pc.less(trades["step"], 4)))
    assert late.num_rows and not out & set(late["seller"].to_pylist())  # members out of the market sold nothing
    [again] = simulate(shocked, tmp_path / "again", progress=False)
    assert read(tmp_path / "again", "trades").equals(trades)  # one seed, one run


def test_a_cohort_needs_a_call_market() -> None:
    from agora.simulations.errors import ScenarioError

    with pytest.raises(ScenarioError, match="a cohort hosts traders of a call market"):
        Scenario.parse({**COHORTS, "markets": {"gpu": {"mechanism": "cda"}}})
    with pytest.raises(ScenarioError, match="a cohort quotes truthful, zic or ziu, not zip"):
        Scenario.parse({**COHORTS, "agents": [{**COHORTS["agents"][0], "strategy": {"kind": "zip"}}, COHORTS["agents"][1]]})


@pytest.mark.ray
@pytest.mark.slow
def test_cohorts_run_on_the_ray_runtime(ray_cluster, tmp_path) -> None:
    on_ray = Scenario.parse(
        {**COHORTS, "duration": 6, "step": 2, "markets": {"gpu": {"mechanism": "call", "rounds": 2}}, "runtime": {"kind": "ray", "shards": 2}}
    )
    [summary] = simulate(on_ray, tmp_path, progress=False)
    assert summary.runtime == "ray" and summary.conserved and summary.errors == 0 and summary.trades > 0
    limits = _limits(tmp_path)
    trades = read(tmp_path, "trades")
    for buyer, seller, price in zip(trades["buyer"].to_pylist(), trades["seller"].to_pylist(), pc.cast(trades["price"], "int64").to_pylist(), strict=False):
        assert limits[seller][1] <= price <= limits[buyer][1]


def test_a_cohort_cannot_trade_away_an_account_that_did_not_join_it() -> None:
    """A cohort that lists someone else's account (forging the consent) gets none of its
    orders for that account settled: the victim's allowance to the exchange stays unspent."""
    from agora.agents import Identity, LocalRuntime
    from agora.agents.roles.cohort import TraderCohort
    from agora.agents.roles.exchange import Exchange
    from agora.agents.roles.market_protocol import CohortOrders, cohort_digest
    from agora.agents.roles.trader import Trader
    from agora.chain import MemoryLedger

    class Thief(TraderCohort):
        victim = ""

        def on_start(self, ctx) -> None:
            super().on_start(ctx)
            forged = self.keys[0].sign_digest(cohort_digest(self.address, self.victim))
            ctx.registry.register_cohort(self.address, [self.victim], [forged])  # lists the victim, signed by the thief
            ctx.send(self.exchange, CohortOrders(side="buy", members=[0], prices=[200], qtys=[50]))

    rt = LocalRuntime(MemoryLedger(), seed=1, sign=False, latency=0.01)
    key = lambda n: Identity.from_seed("thief", n)  # noqa: E731
    where = rt.add(Exchange("ex", key("ex"), "gpu", "call", period=10, rounds=1, ceiling=200))
    victim = Trader("victim", key("victim"), "gpu", "buy", limit=10, units=0)
    fence = Trader("fence", key("fence"), "gpu", "sell", limit=1, units=50)
    Thief.victim = victim.address
    thief = Thief("thief", key("thief"), "gpu", "buy", ["accomplice"], [200], [1], seed="thief")
    for agent in (victim, fence, thief):
        rt.add(agent)
    rt.ledger.mint(victim.address, 10_000)
    rt.start()
    rt.run(timeout=25)
    exchange = rt.agent(where)
    assert rt.ledger.balance_of(victim.address) == 10_000 and rt.ledger.balance_of(fence.address) == 0
    assert exchange.refused_members == 1 and exchange.settled == 0 and rt.ledger.is_conserved()


def test_signed_runs_check_every_cohort_members_consent(tmp_path) -> None:
    signed = Scenario.parse({**COHORTS, "duration": 20, "runtime": {"kind": "local", "signing": True}})
    [summary] = simulate(signed, tmp_path, progress=False)
    assert summary.conserved and summary.trades > 0 and summary.markets["gpu"]["rejected"] == 0  # every consent checked out


def test_a_flooding_trader_is_throttled_and_the_market_trades_on(tmp_path) -> None:
    """A trader sending hundreds of orders a round gets its allowance (4 here) through and no
    more; everyone else trades as before, and money is conserved."""
    flood = Scenario.parse(
        {
            **TINY,
            "markets": {"gpu": {"mechanism": "cda", "rounds": 8, "max_messages_per_round": 4}},
            "agents": [
                *TINY["agents"],
                {
                    "role": "tests.simulations.test_runs:Flooder",
                    "name": "flooder",
                    "label": "flooder",
                    "funds": 5_000,
                    "settings": {"market": "gpu", "side": "buy", "units": 1, "limit": 60},
                },
            ],
        }
    )
    [summary] = simulate(flood, tmp_path / "flood", progress=False)
    [calm] = simulate(
        Scenario.parse({**TINY, "markets": {"gpu": {"mechanism": "cda", "rounds": 8, "max_messages_per_round": 4}}}), tmp_path / "calm", progress=False
    )
    stats = summary.markets["gpu"]
    assert stats["throttled"] > 10_000 and summary.conserved and summary.errors == 0
    rounds = 8 * 6 + 1
    assert stats["quotes"] <= 20 * rounds + 4 * rounds  # one order a round from each honest trader, at most 4 from the flooder
    assert stats["quotes"] + stats["throttled"] > 10 * stats["quotes"]  # unthrottled, the flood would have been most of the book
    assert summary.trades >= 0.8 * calm.trades  # the honest traders still trade


class Flooder(__import__("agora.agents.roles.trader", fromlist=["Trader"]).Trader):
    """Sends 300 orders every time it may quote."""

    def _quote(self, ctx) -> None:
        from agora.agents.roles.market_protocol import PlaceOrder

        if self.exchange:
            for i in range(300):
                ctx.send(self.exchange, PlaceOrder(cid=10_000 + self._cid * 300 + i, side="buy", price=1, qty=1))
            self._cid += 1
            self._out[10_000 + self._cid] = self.period
