"""Chaos runs: the full economy on Ray with the EVM ledger while faults are injected from a
seed, then exact checks of the end state.

The economy is a scenario (``chaos-economy`` by default: all four roles of an AI deal with real
MiniLM inference, and a double auction, a call market and a posted-price market) run by the
ordinary runner on a *durable* Ray runtime (agents/ray/runtime.py: shards journal their agents
and come back after a crash). The ledger is the embedded chain, or an anvil node behind
:class:`~agora.chain.node.FaultyRPC`. A plan drawn from the seed says what happens when:

- ``kill_shard``: a shard's process is killed (Ray restarts it; it rebuilds its agents,
  providers and exchanges among them, from the journal, and sends again what was not
  acknowledged);
- ``kill_job``: the worker process running a provider's inference job is SIGKILLed (Ray
  reruns it inside the job's deadline);
- ``drop``: for a window, shards lose a share of the deliveries from other shards before
  accepting them (the sender hears the failure and sends again);
- ``rpc``: for a window, the proxy refuses, loses the answer to, or stalls past the client's
  timeout a share of JSON-RPC requests (anvil only);
- ``restart_chain``: the anvil node is stopped and started again with its state (anvil only).

The plan, not Ray's thread timing, is what a seed fixes: the same seed injects the same faults
at the same moments into the same shards. After the run, with faults off, every deal is given
time to end, timers are paused and the shards drained; then, checked exactly:

- money: the token's supply equals what was minted, and every balance plus what the contracts
  hold adds up to it;
- contracts: every deal ended; every funded escrow is released or refunded on the chain, with
  exactly one Released or Refunded event, and what each buyer spent is what its settled
  deals paid;
- markets: every trader's balance moved by exactly the turnover its fills recorded (a market
  round settled twice would show here);
- messages: every envelope a transport took was admitted once or refused once by its target
  (agents.runtime.audit_traffic): none lost, none handled twice.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agora.simulations.errors import RunError
from agora.simulations.scenario import Scenario

FaultKind = Literal["kill_shard", "kill_job", "drop", "rpc", "restart_chain"]


class ChaosConfig(BaseModel):
    """What to run and what to inject (rates are shares of deliveries or requests)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scenario: str = "chaos-economy"
    chain: Literal["embedded", "anvil"] = "embedded"
    seed: int = 1
    duration: float | None = Field(default=None, gt=0, description="seconds of market; the scenario's own when not given")
    shards: int = Field(default=3, ge=2, le=64)
    shard_kills: int = Field(default=2, ge=0, le=100)
    job_kills: int = Field(default=1, ge=0, le=100)
    chain_restarts: int = Field(default=1, ge=0, le=100, description="anvil only")
    drop_rate: float = Field(default=0.05, ge=0, lt=1)
    rpc_fault_rate: float = Field(default=0.01, ge=0, lt=1, description="anvil only; each stall holds the (serial) ledger service 12 s")
    settle_timeout: float = Field(default=150.0, gt=0, description="seconds after the market for every deal to end")
    overrides: dict[str, Any] = Field(default_factory=dict, description="scenario fields by dotted path (agents.buyers.count: 2)")


class Fault(BaseModel):
    at: float  # seconds after the agents started
    kind: FaultKind
    target: str = ""
    until: float | None = None  # the end of a window (drop, rpc)
    outcome: str = ""


class Check(BaseModel):
    name: str
    expected: str
    found: str
    ok: bool


class ChaosReport(BaseModel):
    config: ChaosConfig
    faults: list[Fault]
    checks: list[Check]
    counts: dict[str, int]  # what was injected, by kind, as the components counted it
    trades: int = 0
    deals: dict[str, int] = {}
    errors: dict[str, list[str]] = {}  # handler failures per agent (first few), faults' traces
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)


def plan(config: ChaosConfig, duration: float) -> list[Fault]:
    """The faults, drawn from the seed alone: kinds, moments and targets."""
    rng = random.Random(f"chaos:{config.seed}")
    lo, hi = 0.15 * duration, 0.75 * duration
    faults = [Fault(at=rng.uniform(lo, hi), kind="kill_shard", target=f"shard-{rng.randrange(config.shards)}") for _ in range(config.shard_kills)]
    faults += [Fault(at=rng.uniform(lo, hi), kind="kill_job", target="run_job worker") for _ in range(config.job_kills)]
    if config.drop_rate:
        faults.append(Fault(at=lo, until=hi, kind="drop", target=f"{config.drop_rate:.0%} of cross-shard deliveries"))
    if config.chain == "anvil":
        faults += [Fault(at=rng.uniform(lo, hi), kind="restart_chain", target="anvil") for _ in range(config.chain_restarts)]
        if config.rpc_fault_rate:
            faults.append(Fault(at=lo, until=hi, kind="rpc", target=f"{config.rpc_fault_rate:.0%} of JSON-RPC requests"))
    return sorted(faults, key=lambda f: f.at)


def run_chaos(config: ChaosConfig, out: Path | str, progress: bool = True) -> ChaosReport:
    """Run the economy under the plan's faults and check the end state (Ray must be running)."""
    from agora.agents.ray import ray_is_running
    from agora.chain.node import AnvilNode, FaultyRPC
    from agora.simulations.runner import simulate

    if not ray_is_running():
        raise RunError("a chaos run needs Ray running: the entry point calls ray.init() (agora chaos does)")
    started = time.perf_counter()
    base = Scenario.load(config.scenario)
    duration = config.duration or base.duration
    node = proxy = None
    if config.chain == "anvil":
        node = AnvilNode()
        proxy = FaultyRPC(node.url, seed=config.seed, stall_s=12.0)  # past the ledger's 10 s timeout
        ledger = proxy.url
    else:
        ledger = "embedded"
    scenario = base.with_overrides(
        {**config.overrides, "duration": duration, "ledger": ledger, "runtime": {"kind": "ray", "shards": config.shards, "durable": True}}
    )
    faults = plan(config, duration)
    observer = _Chaos(config, faults, node, proxy)
    try:
        [summary] = simulate(scenario, Path(out), progress=progress, observer=observer)
    finally:
        observer.halt()
        if proxy is not None:
            proxy.close()
        if node is not None:
            node.stop()
    counts = dict(observer.counts)
    if proxy is not None:
        counts.update({f"rpc {k}": v for k, v in proxy.injected.items()})
    if node is not None:
        counts["chain restarts"] = node.restarts
    report = ChaosReport(
        config=config,
        faults=faults,
        checks=observer.checks,
        counts=counts,
        trades=summary.trades,
        deals=observer.deal_statuses,
        errors=observer.errors,
        wall_s=round(time.perf_counter() - started, 1),
    )
    (Path(out) / "chaos.json").write_text(report.model_dump_json(indent=2))
    return report


class _Chaos:
    """The runner's observer: injects the plan from a thread, then checks the end."""

    def __init__(self, config: ChaosConfig, faults: list[Fault], node: Any, proxy: Any) -> None:
        self.config, self.faults, self.node, self.proxy = config, faults, node, proxy
        self.checks: list[Check] = []
        self.counts: Counter[str] = Counter()
        self.deal_statuses: dict[str, int] = {}
        self.errors: dict[str, list[str]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._runtime: Any = None
        self._drop_on = False

    # -- injecting ------------------------------------------------------------------------
    def started(self, runtime: Any, world: Any) -> None:
        self._runtime = runtime
        # the plan's moments are seconds of market: count them from the market's clock (on Ray the
        # wall clock), not from this call, which comes after every agent's start (seconds, on a
        # slow machine: enough to push the last faults past the end of a short run)
        self._t0 = time.monotonic() - max(0.0, time.time() - world.t0)
        self._thread = threading.Thread(target=self._inject, daemon=True, name="chaos")
        self._thread.start()

    def _inject(self) -> None:
        windows: list[Fault] = []
        for fault in self.faults:
            while not self._stop.is_set() and time.monotonic() - self._t0 < fault.at:
                self._keep(windows)
                self._stop.wait(0.2)
            if self._stop.is_set():
                fault.outcome = "not reached (the run ended first)"
                continue
            try:
                fault.outcome = self._apply(fault)
            except Exception as exc:  # noqa: BLE001 - a fault that could not be injected is reported, not fatal
                fault.outcome = f"not injected: {type(exc).__name__}: {exc}"
            if fault.until is not None:
                windows.append(fault)
        while not self._stop.is_set() and windows:
            self._keep(windows)
            self._stop.wait(0.2)
        self._end_windows(windows)

    def _keep(self, windows: list[Fault]) -> None:
        """Close windows that ended; a restarted shard forgot its drop rate, so set it again."""
        now = time.monotonic() - self._t0
        ended = [w for w in windows if w.until is not None and now >= w.until]
        self._end_windows(ended)
        for w in ended:
            windows.remove(w)
        if any(w.kind == "drop" for w in windows):
            try:
                self._runtime.set_faults(self.config.drop_rate, self.config.seed)
            except Exception:  # noqa: BLE001 - a shard being restarted: set it next time
                pass

    def _end_windows(self, windows: list[Fault]) -> None:
        for w in windows:
            if w.kind == "drop":
                self._runtime.set_faults(0.0)
            elif w.kind == "rpc" and self.proxy is not None:
                self.proxy.rate = 0.0
            w.outcome += f"; ended at {time.monotonic() - self._t0:.1f} s"

    def _apply(self, fault: Fault) -> str:
        rt = self._runtime
        if fault.kind == "kill_shard":
            index = int(fault.target.split("-")[1])
            rt.kill_shard(index)
            self.counts["shards killed"] += 1
            return f"killed at {time.monotonic() - self._t0:.1f} s"
        if fault.kind == "kill_job":  # waits for a job to run, beside the rest of the plan
            threading.Thread(target=self._kill_job, args=(fault,), daemon=True, name="chaos-job").start()
            return "waiting for a job to run"
        if fault.kind == "drop":
            rt.set_faults(self.config.drop_rate, self.config.seed)
            return f"on at {time.monotonic() - self._t0:.1f} s"
        if fault.kind == "rpc":
            self.proxy.rate = self.config.rpc_fault_rate
            return f"on at {time.monotonic() - self._t0:.1f} s"
        if fault.kind == "restart_chain":
            self.proxy.pause()
            try:
                down = self.node.restart()
            finally:
                self.proxy.resume()
            return f"restarted at {time.monotonic() - self._t0:.1f} s, down {down * 1000:.0f} ms, state reloaded"
        raise RunError(f"unknown fault {fault.kind}")

    def _kill_job(self, fault: Fault) -> None:
        pid = kill_a_job_worker(timeout=30.0, stop=self._stop)
        if pid is None:
            fault.outcome = "no job ran within 30 s of its moment"
            return
        self.counts["job workers killed"] += 1
        fault.outcome = f"SIGKILLed the job worker (pid {pid}) at {time.monotonic() - self._t0:.1f} s"

    def halt(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    # -- checking -------------------------------------------------------------------------
    def finished(self, runtime: Any, world: Any) -> None:
        self.halt()
        runtime.set_faults(0.0)
        if self.proxy is not None:
            self.proxy.rate = 0.0
            self.proxy.resume()
        ended = runtime.run(until=lambda: all(runtime.query(b, "all_done") for b in world.buyers), timeout=self.config.settle_timeout)
        quiet = runtime.quiesce(timeout=60.0)
        stats = runtime.stats()
        self.counts["deliveries dropped"] = sum(s.get("dropped", 0) for s in stats)
        self.counts["agents recovered from journals"] = sum(s.get("recovered", 0) for s in stats)
        self.checks = _checks(runtime, world, ended, quiet)
        self.errors = {name: found[:5] for name, found in runtime.errors().items()}
        deals = [d for b in world.buyers for d in runtime.query(b, "deals").values()]
        self.deal_statuses = dict(Counter(d.status for d in deals))


def kill_a_job_worker(timeout: float, stop: threading.Event | None = None, settle_s: float = 0.5) -> int | None:
    """SIGKILL the process running a provider's ``run_job`` task (Ray titles it so), once it
    has run ``settle_s``; None if none ran within ``timeout`` (this node only)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and not (stop is not None and stop.is_set()):
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                title = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"ray::run_job"):
                time.sleep(settle_s)
                try:
                    os.kill(int(proc.name), signal.SIGKILL)
                except ProcessLookupError:
                    continue
                return int(proc.name)
        time.sleep(0.05)
    return None


def _checks(runtime: Any, world: Any, ended: bool, quiet: bool) -> list[Check]:
    from agora.agents.runtime import audit_traffic

    ledger = runtime.ledger
    checks: list[Check] = []

    def check(name: str, expected: Any, found: Any, ok: bool | None = None) -> None:
        checks.append(Check(name=name, expected=str(expected), found=str(found), ok=(expected == found) if ok is None else ok))

    # money
    supply = ledger.total_supply()
    held = sum(ledger.balance_of(a) for a in ledger.accounts()) + ledger.escrowed_total()
    check("token supply equals what was minted", world.minted, supply)
    check("balances plus contract holdings equal the supply", supply, held)
    # contracts
    check("every deal ended within the settle time", True, ended)
    deals = {b: runtime.query(b, "deals") for b in world.buyers}
    events = ledger.events()
    finals: Counter[str] = Counter(str(e.args.get("deal_id")) for e in events if e.kind in ("Released", "Refunded"))
    funded = bad_state = twice = 0
    for records in deals.values():
        for deal_id, record in records.items():
            if not any(r.op in ("open_escrow", "fund") for r in record.receipts):
                continue
            funded += 1
            state = ledger.escrow(deal_id).status
            want = {"settled": "released", "refunded": "refunded"}.get(record.status)
            bad_state += state != want
            twice += finals[deal_id] != 1
    check("funded escrows released (settled) or refunded, as the buyer recorded", f"0 of {funded} otherwise", f"{bad_state} of {funded} otherwise")
    check("funded escrows with exactly one payout or refund", f"{funded} of {funded}", f"{funded - twice} of {funded}")
    spent_ok = 0
    for buyer, records in deals.items():
        funds = _funds(world, buyer)
        spent_ok += funds - ledger.balance_of(buyer) == sum(r.paid for r in records.values() if r.status == "settled")
    check("each buyer spent exactly what its settled deals paid", f"{len(deals)} of {len(deals)}", f"{spent_ok} of {len(deals)}")
    # markets
    sides = {h.address: h.side for m in world.meters.values() for h in m.holders}
    traders = [a for a, (_, role) in world.groups.items() if role == "trader"]
    moved_ok = 0
    for address in traders:
        turnover = runtime.query(address, "state")["turnover"]
        delta = ledger.balance_of(address) - _funds(world, address)
        moved_ok += delta == (turnover if sides[address] == "sell" else -turnover)
    check("every trader's balance moved by exactly its recorded fills", f"{len(traders)} of {len(traders)}", f"{moved_ok} of {len(traders)}")
    # messages
    check("shards drained (nothing queued, unsent or unacknowledged)", True, quiet)
    audit = audit_traffic(runtime.traffic())
    check("accepted messages lost", 0, audit.lost)
    check("accepted messages handled twice", 0, audit.twice)
    checks.append(
        Check(
            name="messages sent / admitted / refused / redeliveries dropped",
            expected="sent = admitted + refused",
            found=f"{audit.sent} / {audit.admitted} / {audit.refused} / {audit.replays}",
            ok=audit.sent == audit.admitted + audit.refused,
        )
    )
    return checks


def _funds(world: Any, address: str) -> int:
    return world.funds.get(address, 0)
