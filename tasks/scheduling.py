"""GPU-aware scheduling: GPU memory as a resource Ray enforces, and a provider's capacity book
(the buyer's side, weighing price, reputation and free GPU memory, is economy.ReverseAuction).

Ray counts GPUs, possibly fractional, but a fraction carries no memory isolation: two jobs of 0.5
GPU that each need 30 GB land on one 40 GB card and one of them dies. Agora declares each node's
GPU memory as a custom resource, ``gpu_memory_mb`` (:func:`node_resources`), and every job asks
for the memory it needs beside its GPUs (:func:`job_options`), so Ray itself will not place jobs
whose memory does not fit; on a real GPU the job's process is also capped by torch's allocator.
"""

from __future__ import annotations

import threading
from typing import Any

from agora.tasks.errors import TasksError
from agora.tasks.jobs import JobSpec, Resources

GPU_MEMORY = "gpu_memory_mb"


class CapacityExceeded(TasksError):
    """A job that does not fit what a provider has free (GPUs, GPU memory or CPUs)."""


def node_resources(logical_gpu_memory_mb: int | None = None) -> dict[str, float]:
    """The custom resources to start a Ray node with (``ray.init(resources=...)`` or ``ray start
    --resources``): the node's total GPU memory, measured from its GPUs when it has any, else the
    given logical figure (tests, simulations)."""
    total = 0
    try:
        import torch

        if torch.cuda.is_available():
            total = sum(torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count())) // 2**20
    except ImportError:
        pass
    if not total and logical_gpu_memory_mb:
        total = logical_gpu_memory_mb
    return {GPU_MEMORY: float(total)} if total else {}


def job_options(spec: JobSpec, cluster: dict[str, float]) -> dict[str, Any]:
    """Ray task options for ``spec``: its GPUs and CPUs (Ray sets the task's thread count from
    the CPUs it asks for), and its GPU memory wherever ``cluster`` (the cluster's resources)
    declares that resource."""
    options: dict[str, Any] = {"num_gpus": spec.resources.gpus, "num_cpus": spec.resources.cpus}
    if spec.resources.gpu_memory_mb:
        if GPU_MEMORY in cluster:
            if spec.resources.gpu_memory_mb > cluster[GPU_MEMORY]:
                raise CapacityExceeded(f"job {spec.job_id} needs {spec.resources.gpu_memory_mb} MB of GPU memory; the cluster has {cluster[GPU_MEMORY]:.0f}")
            options["resources"] = {GPU_MEMORY: float(spec.resources.gpu_memory_mb)}
    return options


class Capacity:
    """A provider's book of what it has and what its accepted jobs hold. Reservations are made
    when a job is accepted and released when it ends, so the provider never promises the same
    GPU memory twice."""

    def __init__(self, gpus: float, gpu_memory_mb: int, cpus: float) -> None:
        self.total = Resources(gpus=gpus, gpu_memory_mb=gpu_memory_mb, cpus=cpus)
        self._held: dict[str, Resources] = {}
        self._lock = threading.Lock()

    def free(self) -> Resources:
        with self._lock:
            return self._free()

    def _free(self) -> Resources:
        held = list(self._held.values())
        return Resources(
            gpus=max(0.0, self.total.gpus - sum(r.gpus for r in held)),
            gpu_memory_mb=max(0, self.total.gpu_memory_mb - sum(r.gpu_memory_mb for r in held)),
            cpus=max(0.0, self.total.cpus - sum(r.cpus for r in held)),
        )

    def fits(self, need: Resources) -> str:
        """Why ``need`` does not fit what is free now ("" when it does)."""
        with self._lock:
            return _shortfall(need, self._free())

    def reserve(self, job_id: str, need: Resources) -> None:
        with self._lock:
            if job_id in self._held:
                return
            short = _shortfall(need, self._free())
            if short:
                raise CapacityExceeded(f"job {job_id}: {short}")
            self._held[job_id] = need

    def release(self, job_id: str) -> None:
        with self._lock:
            self._held.pop(job_id, None)

    def __getstate__(self) -> dict[str, Any]:  # snapshots of the provider agent carry the book
        return {"total": self.total, "_held": dict(self._held)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.total, self._held, self._lock = state["total"], state["_held"], threading.Lock()


def _shortfall(need: Resources, free: Resources) -> str:
    if need.gpus > free.gpus + 1e-9:
        return f"needs {need.gpus} GPUs, {free.gpus} free"
    if need.gpu_memory_mb > free.gpu_memory_mb:
        return f"needs {need.gpu_memory_mb} MB of GPU memory, {free.gpu_memory_mb} MB free"
    if need.cpus > free.cpus + 1e-9:
        return f"needs {need.cpus} CPUs, {free.cpus} free"
    return ""
