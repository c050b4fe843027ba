"""Executors: where a provider's jobs run.

:func:`run_job` is the unit of work, a plain function: verify and load the model from the
content store, read the inputs, embed, meter. :class:`LocalExecutor` calls it in-process (tests,
simulations); :class:`RayExecutor` runs it as a Ray task that asks for the job's GPUs and CPUs,
so Ray's scheduler places it on a node with free capacity. Agents see only ``Executor.run``
and never import Ray.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.errors import InvalidJob, JobFailed, TasksError
from tasks.jobs import JobResult, JobSpec, Metering
from tasks.store import ContentStore

if TYPE_CHECKING:
    from tasks.runner import RunnerCache


@cache
def _process_cache() -> RunnerCache:
    """One warm-model cache per process (Ray reuses workers, so models stay warm). torch and
    transformers load on first use, not on import: agents that never run a model (buyers,
    owners, actors hosting them) start without them."""
    from tasks.runner import RunnerCache

    return RunnerCache()


def read_dataset(store: ContentStore, digest: str) -> list[str]:
    """A dataset artifact is one JSONL file of {"text": ...} rows (or one text per line)."""
    rows = []
    for line in store.file(digest).read_text().splitlines():
        if line.strip():
            rows.append(json.loads(line)["text"] if line.lstrip().startswith("{") else line)
    return rows


def run_job(spec: JobSpec, store_root: str) -> JobResult:
    """Run one job against the store at ``store_root``; raises TasksError.

    The model's files are verified against its hash before loading (a tampered model never
    loads), the model must be of the kind the job asks for, generation never goes past
    ``max_new_tokens``, and a result larger than ``max_output_bytes`` is refused.
    """
    from tasks.models import artifact_task

    store = ContentStore(store_root)
    model_path = store.path(spec.model_hash)
    kind = artifact_task(model_path)
    if kind != spec.task:
        raise InvalidJob(f"model {spec.model_hash[:12]}… is a {kind} model, the job asks for {spec.task}")
    texts = spec.inputs if spec.inputs is not None else read_dataset(store, spec.dataset_hash or "")
    base = None
    if kind == "classification":
        base = store.path(json.loads((model_path / "card.json").read_text())["base_model"])
    runner = _process_cache().get(model_path, kind, base)
    _cap_gpu_memory(spec)
    start = time.perf_counter()
    new_tokens, lists = 0, {}
    if kind == "embedding":
        array, tokens = runner.embed(texts, spec.batch_size)
    elif kind == "classification":
        array, tokens = runner.classify(texts, spec.batch_size)
        lists = {"task": "classification", "labels": [runner.labels[i] for i in array.argmax(axis=1)]} if len(texts) else {"task": "classification"}
    else:
        outputs, ids, tokens = runner.generate(texts, spec.max_new_tokens, spec.batch_size)
        new_tokens = sum(len(row) for row in ids)
    seconds = time.perf_counter() - start
    gpu_ids, node_id = _ray_placement()
    metering = Metering(
        items=len(texts),
        tokens=tokens,
        new_tokens=new_tokens,
        seconds=seconds,
        gpu_seconds=seconds * spec.resources.gpus,
        device=runner.device,
        gpu_ids=gpu_ids,
        node_id=node_id,
    )
    if kind == "generation":
        result = JobResult.from_texts(spec.job_id, outputs, ids, metering)
    else:
        result = JobResult.from_array(spec.job_id, array, metering, **lists)
    if result.size() > spec.max_output_bytes:
        raise JobFailed(f"job {spec.job_id}: the result is {result.size()} bytes, over its cap of {spec.max_output_bytes}")
    return result


def _cap_gpu_memory(spec: JobSpec) -> None:
    """On a real GPU, hold the process to the GPU memory the job paid for: Ray's fractional GPUs
    share a device with no memory isolation, so torch's allocator is capped instead."""
    if not spec.resources.gpu_memory_mb:
        return
    import torch

    if torch.cuda.is_available():
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, spec.resources.gpu_memory_mb * 2**20 / total))


def _ray_placement() -> tuple[list[str], str]:
    """The GPU ids and node Ray gave this task, when running under Ray."""
    try:
        import ray

        if ray.is_initialized():
            ctx = ray.get_runtime_context()
            return [str(g) for g in ctx.get_accelerator_ids().get("GPU", [])], ctx.get_node_id()
    except Exception:  # noqa: BLE001 - placement is informative, never fatal
        pass
    return [], ""


class Executor(ABC):
    """Runs jobs for a compute provider."""

    store_root: str

    @abstractmethod
    def run(self, spec: JobSpec, timeout_s: float | None = None) -> JobResult:
        """Run ``spec`` and return its result, or raise JobFailed / another TasksError."""


class LocalExecutor(Executor):
    """In-process execution; models stay warm in the process-wide cache."""

    def __init__(self, store_root: Path | str) -> None:
        self.store_root = str(store_root)

    def run(self, spec: JobSpec, timeout_s: float | None = None) -> JobResult:
        try:
            return run_job(spec, self.store_root)
        except TasksError:
            raise
        except Exception as exc:  # noqa: BLE001 - any model/runtime error is a job failure
            raise JobFailed(f"job {spec.job_id} failed: {exc!r}") from exc


class RayExecutor(Executor):
    """Each job is a Ray task asking for the job's resources (logical GPUs work without one)."""

    def __init__(self, store_root: Path | str, **task_options: Any) -> None:
        self.store_root = str(store_root)
        self.task_options = task_options

    def run(self, spec: JobSpec, timeout_s: float | None = None) -> JobResult:
        import ray
        from ray.exceptions import GetTimeoutError, RayError

        timeout_s = min(t for t in (timeout_s, spec.timeout_s, float("inf")) if t is not None)
        timeout_s = None if timeout_s == float("inf") else timeout_s
        from tasks.scheduling import job_options

        options = {**job_options(spec), "max_retries": 0}
        ref = ray.remote(run_job).options(**{**options, **self.task_options}).remote(spec, self.store_root)
        try:
            return ray.get(ref, timeout=timeout_s)
        except GetTimeoutError:
            ray.cancel(ref, force=True)
            raise JobFailed(f"job {spec.job_id} missed its {timeout_s:.0f} s limit") from None
        except RayError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, TasksError):
                raise cause from None
            raise JobFailed(f"job {spec.job_id} failed on Ray: {exc}") from exc
