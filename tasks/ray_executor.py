"""The Ray executor: the one module of ``tasks`` that imports Ray.

Each job is a Ray task asking for the job's GPUs and CPUs (logical GPUs work without one), so
Ray's scheduler places it on a node with free capacity; a job over several whole GPUs runs
data-parallel in a placement group; a data owner's vault is a named actor pinned to its node,
whose jobs run as tasks pinned there too (compute-to-data)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import agora.tasks.run as run
from agora.tasks.errors import JobFailed, TasksError
from agora.tasks.executor import Executor, signed_by, vault_name
from agora.tasks.jobs import JobResult, JobSpec, Resources
from agora.tasks.run import merge_results, read_dataset
from agora.tasks.store import ContentStore
from agora.tasks.vault import DataVault, ForgedRequest, request_digest


def _placement() -> tuple[list[str], str]:
    """The GPU ids and node Ray gave this task, when running under Ray."""
    try:
        import ray

        if ray.is_initialized():
            ctx = ray.get_runtime_context()
            return [str(g) for g in ctx.get_accelerator_ids().get("GPU", [])], ctx.get_node_id()
    except Exception:  # noqa: BLE001 - placement is informative, never fatal
        pass
    return [], ""


def run_job(spec: JobSpec, store_root: str, data_root: str | None = None) -> JobResult:
    """:func:`agora.tasks.run.run_job` as a Ray task, metered with the GPUs and node Ray gave it
    (the task keeps the name: a worker's process title reads ``ray::run_job``)."""
    return run.run_job(spec, store_root, data_root, placement=_placement())


def map_tasks(fn: Callable[..., Any], calls: list[tuple[Any, ...]], num_cpus: float = 1) -> Iterator[Any]:
    """Run ``fn(*args)`` for each ``args`` in ``calls`` as Ray tasks of ``num_cpus`` each, and
    yield their results as they finish (a sweep's points, run side by side on the cluster)."""
    import ray

    remote = ray.remote(num_cpus=num_cpus)(fn)
    pending = [remote.remote(*args) for args in calls]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        yield ray.get(done[0])


def job_options(spec: JobSpec) -> dict[str, Any]:
    """:func:`agora.tasks.scheduling.job_options` against the cluster this process is on."""
    import ray

    from agora.tasks.scheduling import job_options as options_for

    return options_for(spec, ray.cluster_resources() if spec.resources.gpu_memory_mb else {})


def _retries(spec: JobSpec) -> dict[str, Any]:
    """Ray's retry options for a job: re-run it when its worker or node dies (a system failure),
    never when the job raised (an application failure would only fail again, and a cap it hit
    must stay hit)."""
    return {"max_retries": spec.crash_retries, "retry_exceptions": False}


class RayExecutor(Executor):
    """Each job is a Ray task asking for the job's resources (logical GPUs work without one)."""

    def __init__(self, store_root: Path | str, ledger: Any = None, **task_options: Any) -> None:
        self.store_root = str(store_root)
        self.ledger = ledger  # makes, in a vault's actor, the ledger it reads escrows on (picklable)
        self.task_options = task_options
        self._opened: dict[str, Any] = {}

    def run(self, spec: JobSpec, timeout_s: float | None = None, requester: str = "", deal_id: str | None = None, proof: str = "") -> JobResult:
        import ray
        from ray.exceptions import GetTimeoutError, RayError

        timeout_s = min(t for t in (timeout_s, spec.timeout_s, float("inf")) if t is not None)
        timeout_s = None if timeout_s == float("inf") else timeout_s
        group = None
        if spec.vault is not None:  # compute-to-data: the vault runs it on its own node
            refs = [self._vault_handle(spec.vault).run.remote(spec, requester, None, deal_id, proof)]
        elif spec.resources.gpus > 1 and float(spec.resources.gpus).is_integer():
            group, refs = self._gang(spec)
        else:
            options = {**job_options(spec), **_retries(spec)}
            refs = [ray.remote(run_job).options(**{**options, **self.task_options}).remote(spec, self.store_root)]
        try:
            parts = ray.get(refs, timeout=timeout_s)
            return parts[0] if len(parts) == 1 else merge_results(spec, parts)
        except GetTimeoutError:
            for ref in refs:  # a vault's job is an actor task, which Ray cancels only without force
                ray.cancel(ref, force=spec.vault is None)
            raise JobFailed(f"job {spec.job_id} missed its {timeout_s:.0f} s limit") from None
        except RayError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, TasksError):
                raise cause from None
            raise JobFailed(f"job {spec.job_id} failed on Ray: {exc}") from exc
        finally:
            if group is not None:
                from ray.util.placement_group import remove_placement_group

                remove_placement_group(group)

    def _gang(self, spec: JobSpec) -> tuple[Any, list[Any]]:
        """A job over N whole GPUs runs data-parallel: a placement group reserves N bundles of
        one GPU (and its share of CPUs and GPU memory) on as few nodes as possible, all or
        nothing, and one task per bundle takes a contiguous slice of the inputs."""
        import ray
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        from agora.tasks.scheduling import GPU_MEMORY

        n = int(spec.resources.gpus)
        texts = spec.inputs if spec.inputs is not None else read_dataset(ContentStore(self.store_root), spec.dataset_hash or "")
        per = Resources(gpus=1, cpus=spec.resources.cpus / n, gpu_memory_mb=spec.resources.gpu_memory_mb // n)
        bundle: dict[str, float] = {"GPU": 1.0, "CPU": per.cpus}
        if per.gpu_memory_mb and GPU_MEMORY in ray.cluster_resources():
            bundle[GPU_MEMORY] = float(per.gpu_memory_mb)
        group = placement_group([bundle] * n, strategy="PACK")
        bounds = [round(i * len(texts) / n) for i in range(n + 1)]
        refs = []
        for i in range(n):
            part = spec.model_copy(update={"inputs": texts[bounds[i] : bounds[i + 1]], "dataset_hash": None, "resources": per})
            strategy = PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=i)
            options = {"num_gpus": 1, "num_cpus": per.cpus, **_retries(spec), "scheduling_strategy": strategy}
            if GPU_MEMORY in bundle:
                options["resources"] = {GPU_MEMORY: bundle[GPU_MEMORY]}
            refs.append(ray.remote(run_job).options(**options).remote(part, self.store_root))
        return group, refs

    def open_vault(self, owner: str) -> tuple[str, Any]:
        """A named actor pinned to this process's node: the data stays where its owner is."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        name = vault_name(owner)
        handle: Any  # ray types an actor's creation as its handle or its class
        try:
            handle = ray.get_actor(name)
        except ValueError:
            node = ray.get_runtime_context().get_node_id()
            options = {"name": name, "num_cpus": 0, "max_concurrency": 4, "get_if_exists": True}
            handle = (
                ray.remote(RayVault)
                .options(**options, scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
                .remote(owner, str(self.vault_root(owner)), self.store_root, self.ledger)
            )
        self._opened[name] = handle  # a named actor still dies with its last handle: keep one
        return name, ActorClient(handle)

    def vault(self, name: str) -> Any:
        return ActorClient(self._vault_handle(name))

    @staticmethod
    def _vault_handle(name: str) -> Any:
        import ray

        from agora.tasks.errors import UnknownArtifact

        try:
            return ray.get_actor(name)
        except ValueError:
            raise UnknownArtifact(f"no vault {name!r} on this cluster") from None


class ActorClient:
    """Calls an actor's methods synchronously, raising the actor's own errors (the runtime's
    proxies for its ledger and registry are this too)."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def __getattr__(self, name: str) -> Any:
        import ray
        from ray.exceptions import RayTaskError

        method = getattr(self._handle, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return ray.get(method.remote(*args, **kwargs))
            except RayTaskError as exc:
                raise exc.cause from None

        return call


def _pinned_runner(node: str) -> Any:
    """Runs a job as a Ray task on ``node`` with the job's resources (compute-to-data)."""

    def run(spec: JobSpec, store_root: str, data_root: str) -> JobResult:
        import ray
        from ray.exceptions import RayTaskError, TaskUnschedulableError
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        options = {**job_options(spec), **_retries(spec), "scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=False)}
        try:
            # ray's overloads type run_job by its required arguments only (data_root has a default)
            return ray.get(ray.remote(run_job).options(**options).remote(spec, store_root, data_root))  # type: ignore[call-arg]
        except RayTaskError as exc:
            if isinstance(exc.cause, TasksError):
                raise exc.cause from None
            raise JobFailed(f"job {spec.job_id} failed in the vault: {exc}") from exc
        except TaskUnschedulableError:
            raise JobFailed(
                f"job {spec.job_id} needs {spec.resources.gpus} GPUs and {spec.resources.cpus} CPUs, which the vault's node does not have: "
                "compute-to-data runs where the data lives"
            ) from None

    return run


class RayVault(DataVault):
    """A DataVault in an actor: its jobs run as Ray tasks pinned to the vault's own node. Any
    client of the cluster can call it, so a market's vault (one given the ledger actor) runs a
    job only for the requester whose signature is over the job, this vault and the deal."""

    def __init__(self, owner: str, root: str, store_root: str, ledger: Callable[[], Any] | None = None) -> None:
        super().__init__(owner, root, store_root, ledger=None if ledger is None else ledger())

    def run(self, spec: JobSpec, requester: str, runner: Any = None, deal_id: str | None = None, proof: str = "") -> JobResult:
        import ray

        if self.ledger is not None and not signed_by(requester, request_digest(vault_name(self.owner), spec, deal_id, requester), proof):
            self._record(requester, spec.dataset_hash or "", "compute", False, "the request is not signed by its requester", spec, deal_id=deal_id or "")
            raise ForgedRequest(f"a request in the name of {requester} without its signature")
        return super().run(spec, requester, runner or _pinned_runner(ray.get_runtime_context().get_node_id()), deal_id)
