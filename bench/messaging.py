"""Messaging throughput: Agora's runtimes against raw Ray actor calls, same payload, one run.

    python bench/messaging.py [--agents 1000] [--messages 200000] [--ray-messages 3000] [--no-ray]

Rows:
- LocalRuntime, signing off (a trusted single-process simulation; the runtime's policy), the
  message-log hash on: agents play ping-pong in pairs, every message a pydantic model built
  inside the handler, sealed in an envelope (nonce, expiry, payload JSON), passed through the
  receiver's inbox (expiry, replay window, size cap, schema) and dispatched.
- LocalRuntime, signing on: the same with every envelope signed and verified (secp256k1 in Python).
- Spawning: agents added to a LocalRuntime per second (seed-derived key, host, inbox, context), and
  resident memory per hosted agent.
- RayRuntime (agents sharded over actors, signed): messages delivered and handled per second
  between agents in different shards, envelopes batched at most 64 to a Ray call, with p50/p99
  latency (wall clock, send to handle).
- Raw Ray: async actor calls carrying the same payload (the message's JSON, as an envelope
  carries it), awaited in batches of 64 (the baseline).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import tempfile
import time

from rich.console import Console
from rich.table import Table

from agora.agents import Agent, Context, Identity, LocalRuntime, Message, on_message
from agora.agents.population import Population
from agora.chain import MemoryLedger

BODY = "x" * 64  # the payload every row carries


class Ping(Message):
    n: int
    sent: float = 0.0
    body: str = BODY


class Player(Agent):
    """Returns every ping with n - 1 until n reaches 0; records wall-clock latency."""

    def __init__(self, name: str, seed: int | Identity, serve: str | None = None, rally: int = 0, timed: bool = False) -> None:
        super().__init__(name, seed if isinstance(seed, Identity) else Identity.from_seed(seed, name))
        self.serve, self.rally, self.timed = serve, rally, timed
        self.handled = 0
        self.latencies: list[float] = []

    def on_start(self, ctx: Context) -> None:
        if self.serve:
            ctx.send(self.serve, Ping(n=self.rally - 1, sent=time.time() if self.timed else 0.0))

    @on_message(Ping)
    def ping(self, ctx: Context, sender: str, msg: Ping) -> None:
        self.handled += 1
        if msg.sent:
            self.latencies.append(time.time() - msg.sent)
        if msg.n > 0:
            ctx.send(sender, Ping(deal_id=msg.deal_id, n=msg.n - 1, sent=time.time() if msg.sent else 0.0))

    def stats(self) -> tuple[int, list[float]]:
        return self.handled, self.latencies


def player(name: str, identity: Identity, serve: str | None = None, rally: int = 0) -> Player:
    """The role a population names (``bench.messaging:player``): a timed Player."""
    return Player(name, identity, serve=serve, rally=rally, timed=True)


class _Named:
    def __init__(self, address: str) -> None:
        self.address = address


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def local_rate(agents: int, messages: int, sign: bool) -> tuple[float, str]:
    rt = LocalRuntime(MemoryLedger(), sign=sign, seed=1)
    rally = max(1, messages // (agents // 2))
    players = []
    for i in range(0, agents - 1, 2):
        b = Player(f"p{i + 1}", 1)
        players += [Player(f"p{i}", 1, serve=b.address, rally=rally), b]
    for p in players:
        rt.add(p)
    rt.start()
    start = time.perf_counter()
    rt.run()
    seconds = time.perf_counter() - start
    handled = sum(p.handled for p in players)
    return handled / seconds, rt.log_hash()


def spawn(agents: int) -> tuple[float, float]:
    gc.collect()
    before = rss_mb()
    rt = LocalRuntime(MemoryLedger(), sign=False, seed=2)
    start = time.perf_counter()
    for i in range(agents):
        rt.add(Player(f"s{i}", 2))
    seconds = time.perf_counter() - start
    gc.collect()
    return agents / seconds, (rss_mb() - before) * 1024 / agents


def ray_rows(messages: int, pairs: int, shards: int) -> list[tuple[str, float, str]]:
    import ray

    from agora.agents.ray import RayRuntime

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": os.getcwd()}})
    rows = []
    try:

        @ray.remote(num_cpus=0)
        class Raw:
            async def handle(self, payload: str) -> None:
                await asyncio.sleep(0)

        raw = Raw.remote()
        payload = Ping(n=1).model_dump_json()  # what an envelope carries
        ray.get(raw.handle.remote(payload))
        start = time.perf_counter()
        for _ in range(max(1, messages // 64)):
            ray.get([raw.handle.remote(payload) for _ in range(64)])
        raw_rate = (max(1, messages // 64) * 64) / (time.perf_counter() - start)

        for signing, durable in (("session", False), ("agent", False), ("session", True)):
            rally = max(2, messages // pairs)
            if durable:  # durable shards host populations (they rebuild keys from them after a restart)
                rt = RayRuntime(shards=shards, signing=signing, durable=tempfile.mkdtemp(prefix="agora-journal-"))
                groups = []
                for i in range(pairs):
                    serve = Identity.from_seed(3, f"ray-b{i}").address
                    groups += [
                        {"role": "bench.messaging:player", "name": f"ray-a{i}", "settings": {"serve": serve, "rally": rally}},
                        {"role": "bench.messaging:player", "name": f"ray-b{i}"},
                    ]
                names = rt.add_population(Population.parse({"name": "pairs", "seed": 3, "agents": groups}))
                players = [_Named(a) for a in names.values()]
            else:
                rt = RayRuntime(shards=shards, signing=signing)
                players = []
                for i in range(pairs):
                    b = Player(f"ray-b{i}", 3)
                    players += [Player(f"ray-a{i}", 3, serve=b.address, rally=rally, timed=True), b]
                for p in players:  # a_i then b_i: round-robin placement puts them in different shards
                    rt.add(p)
            total = rally * pairs
            start = time.perf_counter()
            rt.start(parallel=True)  # the a-players serve; every ping bounces between shards until n reaches 0
            done = lambda: sum(s["handled"] for s in rt.stats()) >= total  # noqa: E731, B023
            rt.run(until=done, timeout=600)
            seconds = time.perf_counter() - start
            lat = sorted(lt for p in players for lt in rt.query(p.address, "stats")[1])
            handled = sum(rt.query(p.address, "stats")[0] for p in players)
            p50 = statistics.median(lat) * 1e3 if lat else float("nan")
            p99 = lat[int(len(lat) * 0.99) - 1] * 1e3 if lat else float("nan")
            rt.shutdown()
            rate = handled / seconds
            how = "a session signature per batch, agents' delegations" if signing == "session" else "every envelope signed and verified by its agent's key"
            if durable:
                how += "; durable: every batch journaled before it is acknowledged or its replies leave"
            rows.append(
                (
                    f"RayRuntime, {shards} shards, signing={signing}{', durable' if durable else ''}, batches <= 64",
                    rate,
                    f"{how}; {pairs} pairs across shards; p50 {p50:.1f} ms, p99 {p99:.1f} ms; {rate / raw_rate:.1f}x raw",
                )
            )
        rows.append(("raw Ray async actor calls, batches of 64 (baseline)", raw_rate, "same payload"))
    finally:
        ray.shutdown()
    return rows


class Hello(Message):
    answer: bool = False


class Neighbour(Agent):
    """Lists an "echo" service, greets its neighbour (the agent next to it in the population,
    which round-robin placement puts in the other shard) and answers the greeting it gets."""

    def __init__(self, name: str, identity: Identity, seed: int | str = 0) -> None:
        super().__init__(name, identity)
        index = int(name[1:])
        self.neighbour = f"n{index ^ 1}"
        self.seed, self.answered = seed, False

    def on_start(self, ctx: Context) -> None:
        from agora.agents import ServiceRecord

        ctx.registry.register_service(ServiceRecord(address=self.address, name=self.name, capability="echo", price=1), now=ctx.now())
        ctx.send(Identity.from_seed(self.seed, self.neighbour).address, Hello())

    @on_message(Hello)
    def hello(self, ctx: Context, sender: str, msg: Hello) -> None:
        if msg.answer:
            self.answered = True
        else:
            ctx.send(sender, Hello(answer=True))


def scale_row(agents: int, shards: int) -> list[tuple[str, float, str]]:
    """``agents`` agents in ``shards`` shards: built in the shards, listed in discovery, each
    answering one signed greeting from the other shard."""
    import ray

    from agora.agents.population import Population, register_role
    from agora.agents.ray import RayRuntime

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": os.getcwd()}})
    try:
        register_role("neighbour", Neighbour)
        seed = "scale"
        population = Population.parse(
            {"name": "scale", "seed": seed, "agents": [{"role": "neighbour", "count": agents, "name": "n{i}", "settings": {"seed": seed}}]}
        )
        rt = RayRuntime(shards=shards, ttl=3600.0)
        start = time.perf_counter()
        rt.add_population(population)
        built = time.perf_counter() - start
        rt.start(parallel=True)
        ok = rt.run(until=lambda: sum(s["handled"] for s in rt.stats()) >= 2 * agents, timeout=900)
        seconds = time.perf_counter() - start
        stats = rt.stats()
        listed = rt.registry.count("echo", time.time())
        memory = sum(s["rss_mb"] for s in stats) * 1024 / agents
        rt.shutdown()
    finally:
        ray.shutdown()
    note = (
        f"{agents:,} agents in {shards} shards: built in {built:.0f} s, all greeted and answered: {ok}, "
        f"{listed:,} listed in discovery, {memory:.1f} KiB peak resident per agent"
    )
    return [("RayRuntime agents hosted (build + start + 2 signed messages each)", agents / seconds, note)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--signed-messages", type=int, default=2_000)
    parser.add_argument("--ray-messages", type=int, default=100_000)
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--scale", type=int, default=0, help="also host this many agents on RayRuntime (e.g. 100000)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    console = Console()
    table = Table(title="messaging (this machine; best of the repeats for local rows)")
    for col in ("row", "per second", "notes"):
        table.add_column(col, justify="right" if col == "per second" else "left")
    with console.status("LocalRuntime..."):
        for agents in sorted({100, args.agents}):
            rates, hashes = [], set()
            for _ in range(args.repeat):
                rate, digest = local_rate(agents, args.messages, sign=False)
                rates.append(rate)
                hashes.add(digest)
            note = f"{agents:,} agents in pairs; median {statistics.median(rates):,.0f}; log hash identical across runs: {len(hashes) == 1}"
            table.add_row("LocalRuntime, signing off, log hash on", f"{max(rates):,.0f}", note)
        signed, _ = local_rate(20, args.signed_messages, sign=True)
        table.add_row("LocalRuntime, signing on", f"{signed:,.0f}", "secp256k1 sign + recover per message")
        per_s, kib = spawn(args.agents * 10)
        table.add_row("LocalRuntime agents spawned", f"{per_s:,.0f}", f"{kib:.1f} KiB resident per agent ({args.agents * 10:,} agents)")
    if not args.no_ray:
        with console.status("Ray..."):
            for label, rate, note in ray_rows(args.ray_messages, args.pairs, args.shards):
                table.add_row(label, f"{rate:,.0f}", note)
    if args.scale:
        with console.status(f"RayRuntime with {args.scale:,} agents..."):
            for label, rate, note in scale_row(args.scale, args.shards):
                table.add_row(label, f"{rate:,.0f}", note)
    console.print(table)


if __name__ == "__main__":
    main()
