"""The unit of work: run one job against the content store, a plain function.

Verify and load the model from the content store (a tampered model never loads), read the
inputs, embed, classify or generate, meter. Every executor (in-process, a Ray task, a data
owner's vault) ends here, so a job gives the same result wherever it runs."""

from __future__ import annotations

import json
import time
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

from agora.tasks.errors import InvalidJob, JobFailed
from agora.tasks.jobs import JobResult, JobSpec, Metering
from agora.tasks.store import ContentStore

if TYPE_CHECKING:
    from agora.tasks.runner import RunnerCache


@cache
def _process_cache() -> RunnerCache:
    """One warm-model cache per process (Ray reuses workers, so models stay warm). torch and
    transformers load on first use, not on import: agents that never run a model (buyers,
    owners, actors hosting them) start without them."""
    from agora.tasks.runner import RunnerCache

    return RunnerCache()


@cache
def _store(root: str) -> ContentStore:
    """One store object per root and process: it remembers which artifacts it has verified (and
    their files' sizes and mtimes), so a warm worker re-hashes a 90 MB model only when it changed."""
    return ContentStore(root)


def read_dataset(store: ContentStore, digest: str) -> list[str]:
    """A dataset artifact is one JSONL file of {"text": ...} rows (or one text per line)."""
    rows = []
    for line in store.file(digest).read_text().splitlines():
        if line.strip():
            rows.append(json.loads(line)["text"] if line.lstrip().startswith("{") else line)
    return rows


def _kind_needs_base(kind: str) -> bool:
    from agora.tasks.runner import RUNNERS  # the runners pull in torch: only when a job runs

    runner = RUNNERS.get(kind)
    return bool(runner is not None and runner.needs_base)


def run_job(spec: JobSpec, store_root: str, data_root: str | None = None, placement: tuple[list[str], str] = ([], "")) -> JobResult:
    """Run one job against the store at ``store_root``; raises TasksError. ``placement`` is
    the GPU ids and node the job was given, for its metering (the Ray executor passes them).

    The model's files are verified against its hash before loading (a tampered model never
    loads), the model must be of the kind the job asks for, generation never goes past
    ``max_new_tokens``, and a result larger than ``max_output_bytes`` is refused.
    """
    from agora.tasks.models import artifact_task

    store = _store(store_root)
    model_path = store.path(spec.model_hash)
    kind = artifact_task(model_path)
    if kind != spec.task:
        raise InvalidJob(f"model {spec.model_hash[:12]}… is a {kind} model, the job asks for {spec.task}")
    data = store if data_root is None else _store(data_root)  # a vault's private store
    texts = spec.inputs if spec.inputs is not None else read_dataset(data, spec.dataset_hash or "")
    base = None
    if _kind_needs_base(kind):  # a model built on another (a classifier's head) names its base in its card
        base = store.path(json.loads((model_path / "card.json").read_text())["base_model"])
    runner = _process_cache().get(model_path, kind, base)
    _cap_gpu_memory(spec)
    start = time.perf_counter()
    out = runner.run(texts, spec.batch_size, spec.max_new_tokens)
    seconds = time.perf_counter() - start
    gpu_ids, node_id = placement
    metering = Metering(
        items=len(texts),
        tokens=out.tokens,
        new_tokens=out.new_tokens,
        seconds=seconds,
        gpu_seconds=seconds * spec.resources.gpus,
        threads=_torch_threads(),
        device=runner.device,
        gpu_ids=gpu_ids,
        node_id=node_id,
    )
    return _package(spec, metering, out.array, out.texts, out.token_ids, out.labels)


def _package(spec: JobSpec, metering: Metering, array: Any, texts: list[str], token_ids: list[list[int]], labels: list[str]) -> JobResult:
    """The result of ``spec``: texts (with their token ids) or an array (with labels, for a
    classifier), as its runner produced them; refused when larger than the job's output cap."""
    if array is None:
        result = JobResult.from_texts(spec.job_id, texts, token_ids, metering, task=spec.task)
    else:
        result = JobResult.from_array(spec.job_id, array, metering, task=spec.task, **({"labels": labels} if labels else {}))
    if result.size() > spec.max_output_bytes:
        raise JobFailed(f"job {spec.job_id}: the result is {result.size()} bytes, over its cap of {spec.max_output_bytes}")
    return result


def merge_results(spec: JobSpec, parts: list[JobResult]) -> JobResult:
    """One result from the slices of a data-parallel job, in input order; metering adds up
    (wall time is the slowest slice's)."""
    meters = [p.metering for p in parts]
    metering = Metering(
        items=sum(m.items for m in meters),
        tokens=sum(m.tokens for m in meters),
        new_tokens=sum(m.new_tokens for m in meters),
        seconds=max(m.seconds for m in meters),
        gpu_seconds=sum(m.gpu_seconds for m in meters),
        device=meters[0].device,
        gpu_ids=[g for m in meters for g in m.gpu_ids],
        node_id=meters[0].node_id,
    )
    array = None if spec.task == "generation" else np.concatenate([p.array() for p in parts])
    flat = lambda field: [x for p in parts for x in getattr(p, field)]  # noqa: E731
    return _package(spec, metering, array, flat("texts"), flat("token_ids"), flat("labels"))


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _cap_gpu_memory(spec: JobSpec) -> None:
    """On a real GPU, hold the process to the GPU memory the job paid for: Ray's fractional GPUs
    share a device with no memory isolation, so torch's allocator is capped instead."""
    if not spec.resources.gpu_memory_mb:
        return
    import torch

    if torch.cuda.is_available():
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, spec.resources.gpu_memory_mb * 2**20 / total))
