"""Inference through the market against raw transformers calls, in one run.

    python bench/inference.py [--calls 40] [--batch 32] [--threads 2]

Both sides embed the same 32 sentences per request with the packaged MiniLM, torch using the
same number of threads. Raw: tokenizer + AutoModel + mean pooling in this process. Market path:
a Caller agent finds the served model in the registry, opens a payment channel on the ledger and
pays each call with a signed voucher; the ModelServer checks the voucher, runs the job as a Ray
task asking for the same CPUs (Ray sets the task's thread count from them), meters it, answers,
and redeems vouchers in claims; verification is off (the caller does not re-check results).
Agents run in a LocalRuntime in this process, signing on. Warm-up calls come first on both sides
(model loading is not timed). Prints throughput, the ratio, and p50/p99 latency of each side.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import ray
import torch
from rich.console import Console
from rich.table import Table

from agora.agents import Identity, LocalRuntime
from agora.agents.roles.serving import Caller, ModelServer
from agora.chain import MemoryLedger
from agora.simulations.demo import demo_texts, packaged_model_path
from agora.tasks import ContentStore, RayExecutor
from agora.tasks.runner import EmbeddingRunner

PRICE = 10**15


def raw(texts: list[str], calls: int, warm: int, threads: int) -> list[float]:
    torch.set_num_threads(threads)
    runner = EmbeddingRunner(packaged_model_path())  # the same recipe, written once in tasks.runner
    latencies = []
    for i in range(warm + calls):
        start = time.perf_counter()
        runner.embed(texts, batch_size=len(texts))
        if i >= warm:
            latencies.append(time.perf_counter() - start)
    return latencies


def market(texts: list[str], calls: int, warm: int, threads: int) -> tuple[list[float], int, float]:
    store = ContentStore(tempfile.mkdtemp(prefix="agora-bench-"))
    rt = LocalRuntime(MemoryLedger(), store=store, executor=RayExecutor(store.root), seed=1)
    server = ModelServer(
        "server", Identity.from_seed("bench", "server"), packaged_model_path(), "all-MiniLM-L6-v2", PRICE, resources={"cpus": threads}, claim_every=10
    )
    caller = Caller("caller", Identity.from_seed("bench", "caller"), "all-MiniLM-L6-v2", texts, calls=warm + calls, deposit=(warm + calls) * PRICE)
    rt.add(server)
    rt.add(caller)
    rt.ledger.mint(caller.address, (warm + calls) * PRICE)
    rt.start()
    rt.run(until=caller.done)
    rt.shutdown()  # the server redeems what it has not claimed yet
    assert not caller.refusals, caller.refusals
    threads_seen = caller.answers[-1].metering.threads
    return caller.latencies[warm:], threads_seen, rt.ledger.balance_of(server.address) / 1e18


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warm", type=int, default=3)
    args = parser.parse_args()
    texts = demo_texts()[: args.batch]
    console = Console()
    ray.init(address="local", num_cpus=args.threads, include_dashboard=False, log_to_driver=False)  # a fresh local Ray, never a running one
    try:
        with console.status("raw transformers..."):
            base = raw(texts, args.calls, args.warm, args.threads)
        with console.status("market path..."):
            path, threads_seen, earned = market(texts, args.calls, args.warm, args.threads)
    finally:
        ray.shutdown()
    table = Table(title=f"{args.calls} calls x {len(texts)} sentences, MiniLM, {args.threads} torch threads both sides")
    for col in ("path", "calls/s", "p50 ms", "p99 ms", "notes"):
        table.add_column(col, justify="left" if col in ("path", "notes") else "right")

    def row(name: str, lat: list[float], note: str) -> float:
        rate = len(lat) / sum(lat)
        p99 = sorted(lat)[max(0, int(len(lat) * 0.99) - 1)]
        table.add_row(name, f"{rate:.2f}", f"{statistics.median(lat) * 1e3:.1f}", f"{p99 * 1e3:.1f}", note)
        return rate

    r = row("raw transformers (baseline)", base, "in this process")
    m = row("market: registry, channel voucher, Ray task, metering", path, f"Ray task threads {threads_seen}; server earned {earned:.3f} AGR")
    console.print(table)
    added = (statistics.median(path) - statistics.median(base)) * 1e3
    console.print(f"market / raw throughput: {m / r:.3f}x (floor 0.9x); p50 latency added: {added:.1f} ms")


if __name__ == "__main__":
    main()
