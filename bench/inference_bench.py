"""Inference cost: the packaged MiniLM through Agora's executors against a raw transformers call.

    python bench/inference_bench.py [--items 256] [--repeats 3]

Every row embeds the same texts with warm models (a warm-up run first) and reports the median.
Baseline: tokenizer + AutoModel + mean pooling written inline. ``LocalExecutor`` adds the store's
hash check, dataset plumbing and metering; ``RayExecutor`` adds a Ray task asking for a (logical)
GPU, its scheduling and the result's transfer back.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from rich.console import Console
from rich.table import Table
from transformers import AutoModel, AutoTokenizer

from agora.simulations.demo import demo_texts, packaged_model_path
from agora.tasks import ContentStore, JobSpec, LocalExecutor, RayExecutor, Resources


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: load the model, start the worker
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def raw_baseline(texts: list[str]) -> Callable[[], object]:
    path = packaged_model_path()
    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()

    @torch.inference_mode()
    def run() -> object:
        out = []
        for i in range(0, len(texts), 32):
            batch = tok(texts[i : i + 32], padding=True, truncation=True, max_length=256, return_tensors="pt")
            states = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            out.append(torch.nn.functional.normalize((states * mask).sum(1) / mask.sum(1), dim=-1))
        return torch.cat(out)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    base = demo_texts()
    texts = (base * (args.items // len(base) + 1))[: args.items]
    store = ContentStore(tempfile.mkdtemp(prefix="agora-bench-"))
    spec = JobSpec(job_id="bench", model_hash=store.put(packaged_model_path()), inputs=texts, resources=Resources(gpus=1, cpus=os.cpu_count() or 1))

    rows = [("raw transformers call (baseline)", median_seconds(raw_baseline(texts), args.repeats))]
    local = LocalExecutor(store.root)
    rows.append(("LocalExecutor.run (store check + metering)", median_seconds(lambda: local.run(spec), args.repeats)))

    import ray

    ray.init(address="local", num_gpus=1, include_dashboard=False, log_to_driver=False)
    try:
        remote = RayExecutor(store.root)
        rows.append(("RayExecutor.run (Ray task on a logical GPU)", median_seconds(lambda: remote.run(spec, timeout_s=300), args.repeats)))
    finally:
        ray.shutdown()

    table = Table(title=f"Embedding {args.items} sentences with all-MiniLM-L6-v2 on {'GPU' if torch.cuda.is_available() else 'CPU'} (median of {args.repeats})")
    for col in ("path", "seconds", "sentences/s", "vs raw"):
        table.add_column(col, justify="left" if col == "path" else "right")
    raw = rows[0][1]
    for name, secs in rows:
        table.add_row(name, f"{secs:.3f}", f"{args.items / secs:,.0f}", f"{secs / raw:.2f}x")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
