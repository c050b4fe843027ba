"""Runs a scenario: builds its runtime, ledger and agents, steps the clock, streams the records.

The same agents run on either runtime: the local one (one process, a virtual clock, seeded:
the same seed gives the same records, byte for byte in ``trades``) or Ray (agents in shard
actors, the wall clock; the entry point starts or joins Ray, this module never does). Each
market gets an exchange agent, the shocks a director agent; agents are built from the scenario's
population (inside the shards on Ray) and funded on the ledger. Every ``step`` the runner
advances the clock, reads the exchanges' new trades off their tapes (and the buyers' settled deals), writes
the step's metrics, and every ``metrics.agent_every`` steps each agent's state. At the end it
checks that the ledger conserved every token and writes ``summary.json``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from agora.agents import Identity, LocalRuntime
from agora.agents.registry import Registry
from agora.agents.roles.cohort import TraderCohort
from agora.agents.roles.exchange import Exchange, read_trades
from agora.agents.runtime import Runtime
from agora.chain import ledger_factory
from agora.simulations.director import Director, plan
from agora.simulations.errors import RunError
from agora.simulations.meter import DealMeter, Holder, MarketMeter, is_nan
from agora.simulations.recorder import Recorder
from agora.simulations.scenario import Scenario

log = logging.getLogger(__name__)
PRIOR = Identity.from_seed("agora:reputation-prior", "prior").address  # who vouches for reputation priors


class RunSummary(BaseModel):
    name: str
    variant: str
    out: str
    seed: int | str
    runtime: str
    ledger: str
    steps: int
    step_s: float
    agents: int
    trades: int
    volume: int
    turnover: str  # base units, as a decimal string (exact)
    minted: str
    supply: str
    conserved: bool
    wall_s: float
    errors: int
    markets: dict[str, dict[str, Any]] = {}
    shocks: list[dict[str, Any]] = []
    mean_efficiency: float | None = None
    quotes: int = 0  # orders the exchanges received


@contextmanager
def _runtime(scenario: Scenario, out: Path) -> Iterator[Any]:
    kind = scenario.runtime
    if kind.kind == "local":
        registry = Registry(pretrusted=[PRIOR])
        runtime: Any = LocalRuntime(
            ledger_factory(scenario.ledger, **scenario.ledger_roles()), registry=registry, seed=scenario.seed, sign=kind.signing, latency=kind.latency
        )
    else:
        from agora.agents.ray import RayRuntime, ray_is_running

        if not ray_is_running():
            raise RunError("a ray runtime needs Ray running: the entry point calls ray.init() (agora simulate does)")

        if kind.durable and any(g.host == "cohort" and g.count for g in scenario.agents):
            raise RunError("a durable run rebuilds every agent's key after a crash; a cohort holds its members' keys: host those traders as agents")
        journal = None
        if kind.durable:  # a fresh run: a journal left by an earlier run in this folder would be recovered
            import shutil

            shutil.rmtree(out / "journal", ignore_errors=True)
            journal = str((out / "journal").resolve())
        runtime = RayRuntime(ledger_factory(scenario.ledger, **scenario.ledger_roles()), shards=kind.shards, seed=scenario.seed, durable=journal)
    try:
        yield runtime
    finally:
        runtime.shutdown()


def simulate(
    scenario: Scenario, out: Path | str, progress: bool = True, on_step: Callable[[int, int], None] | None = None, observer: Any = None
) -> list[RunSummary]:
    """Run the scenario (each of its variants, side by side under ``out/VARIANT``).
    ``on_step(step, trades so far)`` is called after every step (benchmarks sample memory);
    an ``observer`` may have ``started(runtime, world)``, called once the agents run, and
    ``finished(runtime, world)``, called after the last step while the runtime still runs
    (the chaos harness injects faults from the one and checks the end state in the other)."""
    out = Path(out)
    variants = scenario.variant_scenarios()
    if list(variants) == ["main"]:
        return [run(scenario, out, progress=progress, on_step=on_step, observer=observer)]
    results = [run(sc, out / name, variant=name, progress=progress, on_step=on_step, observer=observer) for name, sc in variants.items()]
    (out / "variants.json").write_text(json.dumps({"scenario": scenario.name, "variants": list(variants)}, indent=2))
    return results


def run(
    scenario: Scenario, out: Path, variant: str = "main", progress: bool = True, on_step: Callable[[int, int], None] | None = None, observer: Any = None
) -> RunSummary:
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    (out / "scenario.yaml").write_text(yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False))
    recorder = Recorder(out, scenario.metrics.flush_rows, messages=scenario.metrics.messages)
    try:
        with _runtime(scenario, out) as runtime:
            world = populate(scenario, runtime)
            _write_schedule(world, recorder, out)
            t0 = epoch = runtime.now()
            if scenario.metrics.messages:  # where the runtime delivers in this process
                runtime.watch(lambda at, env: recorder["messages"].append((at - epoch, env.sender, env.target, _type_name(env), env.session, env.nonce)))
            runtime.start()
            if world.exchanges:  # the clock the markets keep: their rounds start from it
                t0 = float(runtime.query(next(iter(world.exchanges.values())), "t0"))
            world.t0 = t0
            if hasattr(observer, "started"):
                observer.started(runtime, world)
            steps = _loop(scenario, runtime, world, recorder, t0, progress, on_step)
            if hasattr(observer, "finished"):
                observer.finished(runtime, world)
            summary = _summary(scenario, runtime, world, out, variant, steps, started)
    finally:
        recorder.close()
    (out / "summary.json").write_text(summary.model_dump_json(indent=2))
    return summary


class _World:
    """What the runner built: exchanges, agents by name, meters, the director."""

    def __init__(self) -> None:
        self.t0 = 0.0  # when the market's clock started (virtual on the local runtime, wall on Ray)
        self.exchanges: dict[str, str] = {}  # market -> exchange address
        self.cursors: dict[str, int] = {}  # market -> the last trade read off its exchange's tape
        self.addresses: dict[str, str] = {}  # agent name -> address
        self.groups: dict[str, tuple[str, str]] = {}  # address -> (group label, role)
        self.meters: dict[str, MarketMeter] = {}
        self.deals: DealMeter | None = None
        self.buyers: list[str] = []  # deal buyers whose settled deals are the trades
        self.seen_deals: set[str] = set()  # deals that ended and were written to deals.jsonl
        self.settled_deals = 0
        self.director = ""
        self.minted = 0
        self.pending: dict[int, list[tuple[str, str, str, int, int, float, str, str]]] = {}
        self.efficiency: list[float] = []
        self.shocks: list[Any] = []
        self.cohorts: dict[str, list[str]] = {}  # cohort address -> its members' names
        self.hosts: dict[str, str] = {}  # member address -> its cohort
        self.funds: dict[str, int] = {}  # address -> starting funds minted to it
        self.drawn: dict[str, dict[str, Any]] = {}  # agent name -> its drawn settings  # per market step where surplus was possible


def populate(scenario: Scenario, runtime: Any) -> _World:
    """Host the scenario's exchanges, agents (funded, with their reputation priors) and director
    on ``runtime``, not yet started: what a run steps, and what a gateway's hosted market serves."""
    world = _World()
    for market, spec in scenario.markets.items():  # exchanges first: traders look them up at start
        ex = Exchange(
            f"exchange-{market}",
            Identity.from_seed(scenario.seed, f"exchange-{market}"),
            market,
            spec.mechanism,
            period=scenario.step,
            rounds=spec.rounds,
            floor=spec.floor,
            ceiling=spec.ceiling,
            good=spec.good,
            check_delegations=_signed(scenario),
            max_messages_per_round=spec.max_messages_per_round,
        )
        world.exchanges[market] = _add(runtime, ex, scenario)
    cohorts = [g for g in scenario.agents if g.host == "cohort" and g.count]
    lone = scenario.with_overrides({f"agents.{i}.count": 0 for i, g in enumerate(scenario.agents) if g.host == "cohort"}) if cohorts else scenario
    if lone.size():
        world.addresses = runtime.add_population(lone)
    for group in cohorts:  # many alike traders in one agent each (agents/roles/cohort.py)
        cohort = _cohort(scenario, world, group)
        world.cohorts[runtime.add(cohort)] = cohort.names
        world.addresses.update(zip(cohort.names, cohort.addresses, strict=False))
        world.hosts.update(dict.fromkeys(cohort.addresses, cohort.address))
    groups = scenario.group_of()
    for name, address in world.addresses.items():
        world.groups[address] = (groups[name].tag(), groups[name].role)
        if groups[name].funds:
            world.funds[address] = groups[name].funds
            runtime.ledger.mint(address, groups[name].funds)
            world.minted += groups[name].funds
        reputation = groups[name].reputation
        if reputation is not None:
            weight = 100
            good = int(round(reputation * weight))
            if good:
                runtime.registry.rate(PRIOR, address, True, good)
            if weight - good:
                runtime.registry.rate(PRIOR, address, False, weight - good)
    shocks = world.shocks = plan(scenario, world.addresses)
    if shocks:
        director = Director("director", Identity.from_seed(scenario.seed, "director"), shocks, hosts=world.hosts)
        world.director = _add(runtime, director, scenario)
    _meters(scenario, world, shocks)
    return world


def _add(runtime: Any, agent: Any, scenario: Scenario) -> str:
    """Host one agent the runner made (its key from the scenario's seed and its name, which a
    durable Ray runtime needs to rebuild it after a crash)."""
    return runtime.add(agent, key_seed=scenario.seed)


def _drawn(scenario: Scenario, world: _World, group: Any, name: str) -> dict[str, Any]:
    """An agent's drawn settings, drawn once per run (the cohort and the meters both read them)."""
    found = world.drawn.get(name)
    if found is None:
        found = world.drawn[name] = group.settings_for(name, scenario.seed)
    return found


def _cohort(scenario: Scenario, world: _World, group: Any) -> TraderCohort:
    names = group.names()
    drawn = [_drawn(scenario, world, group, n) for n in names]
    first = drawn[0]
    kind = group.strategy.kind if group.strategy is not None else "truthful"
    return TraderCohort(
        f"{group.tag()}-cohort",
        Identity.from_seed(scenario.seed, f"{group.tag()}-cohort"),
        first["market"],
        first["side"],
        names,
        [int(d["limit"]) for d in drawn],
        [int(d.get("units", 1)) for d in drawn],
        seed=scenario.seed,
        strategy=kind,
        delegate=_signed(scenario),
    )


def _signed(scenario: Scenario) -> bool:
    """Whether the run signs: always on Ray; on the local runtime as the scenario says (a
    trusted single-process simulation signs neither envelopes nor cohort delegations)."""
    return scenario.runtime.kind == "ray" or scenario.runtime.signing


def _meters(scenario: Scenario, world: _World, shocks: list[Any]) -> None:
    holders: dict[str, list[Holder]] = {m: [] for m in scenario.markets}
    providers: list[str] = []
    for group in scenario.agents:
        for name in group.names():
            address = world.addresses[name]
            settings = _drawn(scenario, world, group, name)
            if group.role == "trader":
                holders[settings["market"]].append(Holder(address, name, group.tag(), settings["side"], int(settings["limit"]), int(settings.get("units", 1))))
            elif group.role == "buyer":
                world.buyers.append(address)
            elif group.role == "compute_provider":
                providers.append(address)
    world.meters = {m: MarketMeter(m, h, shocks, scenario.step) for m, h in holders.items()}
    if world.buyers:
        world.deals = DealMeter(providers, scenario.step)


def _write_schedule(world: _World, recorder: Recorder, out: Path) -> None:
    for market, meter in world.meters.items():
        for h in meter.holders:
            recorder["schedule"].append((market, h.name, h.address, h.group, h.side, h.limit, h.units))
    (out / "shocks.json").write_text(json.dumps([s.model_dump() for s in world.shocks], indent=1))


def _loop(
    scenario: Scenario, runtime: Any, world: _World, recorder: Recorder, t0: float, progress: bool, on_step: Callable[[int, int], None] | None = None
) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    steps = scenario.steps()
    margin = min(scenario.step / (2 * max(s.rounds for s in scenario.markets.values())) if scenario.markets else scenario.step / 2, 0.5)
    columns = (TextColumn(f"[bold]{scenario.name}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[trades]:,} trades"), TimeElapsedColumn())
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task("steps", total=steps, trades=0)
        trades = 0
        for k in range(steps):
            _advance(runtime, t0 + (k + 1) * scenario.step + margin)
            trades += _collect(scenario, runtime, world, recorder, k, t0)
            if (k + 1) % scenario.metrics.agent_every == 0 or k == steps - 1:
                _agents(scenario, runtime, world, recorder, k)
            bar.update(task, advance=1, trades=trades)
            if on_step is not None:
                on_step(k, trades)
    return steps


def _advance(runtime: Runtime, until: float) -> None:
    runtime.advance(until)


def _collect(scenario: Scenario, runtime: Any, world: _World, recorder: Recorder, k: int, t0: float) -> int:
    """Drain what settled, file each trade under its step, and write step ``k``'s rows."""
    for market, address in world.exchanges.items():
        rounds = scenario.markets[market].rounds
        world.cursors[market], rows, missed = read_trades(runtime.query, address, world.cursors.get(market, 0))
        if missed:
            log.warning("market %s: %d trades left its exchange's tape before the recorder read them (raise its tape_size)", market, missed)
        for _, rnd, t, buyer, seller, price, qty, tx in rows:
            step = (rnd - 1) // rounds
            world.pending.setdefault(step, []).append((market, buyer, seller, price, qty, t, tx, ""))
    busy: dict[str, float] = {}
    for buyer in world.buyers:
        for deal_id, deal in runtime.query(buyer, "deals").items():
            if not deal.done or deal_id in world.seen_deals:
                continue
            world.seen_deals.add(deal_id)
            record = {"step": k, "buyer": buyer, **deal.model_dump(mode="json"), "history": runtime.query(buyer, "history", deal_id)}
            recorder.deal(record)
            if deal.status == "settled" and deal.contract is not None:
                world.settled_deals += 1
                busy[deal_id] = float(deal.metering.get("seconds", 0.0))
                world.pending.setdefault(k, []).append(
                    ("deals", buyer, deal.contract.provider, deal.paid, 1, deal.finished_at - t0, deal.receipts[-1].tx_hash if deal.receipts else "", deal_id)
                )
    rows = world.pending.pop(k, [])
    recorder["trades"].extend([(k, t, market, buyer, seller, price, qty, tx, deal_id) for market, buyer, seller, price, qty, t, tx, deal_id in rows])
    for market, meter in world.meters.items():
        row = meter.row(k, [(r[1], r[2], r[3], r[4]) for r in rows if r[0] == market])
        recorder["steps"].append(row)
        if not is_nan(row[14]):
            world.efficiency.append(row[14])
    if world.deals is not None:
        recorder["steps"].append(world.deals.row(k, [(r[1], r[2], r[3], busy.get(r[7], 0.0)) for r in rows if r[0] == "deals"]))
    return len(rows)


def _agents(scenario: Scenario, runtime: Any, world: _World, recorder: Recorder, k: int) -> None:
    scores = runtime.registry.reputation_scores()
    table = recorder["agents"]
    states = {m["address"]: m for c in world.cohorts for m in runtime.query(c, "member_states")}
    rows = []
    for name, address in world.addresses.items():
        group, role = world.groups[address]
        state = states.get(address) or (runtime.query(address, "state") if role == "trader" else {})
        rows.append(
            (
                k,
                name,
                address,
                group,
                role,
                runtime.ledger.balance_of(address),
                int(state.get("traded", 0)),
                int(state.get("turnover", 0)),
                float(state.get("surplus", 0.0)),
                float(scores.get(address, 0.0)),
            )
        )
    table.extend(rows)


def _summary(scenario: Scenario, runtime: Any, world: _World, out: Path, variant: str, steps: int, started: float) -> RunSummary:
    markets = {m: runtime.query(a, "stats") for m, a in world.exchanges.items()}
    volume = sum(s["volume"] for s in markets.values())
    quotes = sum(s["quotes"] for s in markets.values())
    turnover = sum(int(s["turnover"]) for s in markets.values())
    n_trades = sum(s["settled"] for s in markets.values()) + world.settled_deals
    fired = runtime.query(world.director, "fired") if world.director else []
    eff = world.efficiency
    return RunSummary(
        name=scenario.name,
        variant=variant,
        out=str(out),
        seed=scenario.seed,
        runtime=scenario.runtime.kind,
        ledger=scenario.ledger,
        steps=steps,
        step_s=scenario.step,
        agents=len(world.addresses),
        trades=n_trades,
        volume=volume,
        turnover=str(turnover),
        minted=str(world.minted),
        supply=str(runtime.ledger.total_supply()),
        conserved=runtime.ledger.is_conserved() and runtime.ledger.total_supply() == world.minted,
        wall_s=round(time.perf_counter() - started, 3),
        errors=sum(len(v) for v in runtime.errors().values()),
        markets=markets,
        shocks=fired,
        mean_efficiency=sum(eff) / len(eff) if eff else None,
        quotes=quotes,
    )


def _type_name(envelope: Any) -> str:
    message = getattr(envelope, "_message", None)
    return type(message).__name__ if message is not None else envelope.schema_digest[:12]
