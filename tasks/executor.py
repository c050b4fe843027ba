"""Executors: where a provider's jobs run.

:func:`run_job` is the unit of work, a plain function: verify and load the model from the
content store, read the inputs, embed, meter. :class:`LocalExecutor` calls it in-process (tests,
simulations); :class:`RayExecutor` runs it as a Ray task that asks for the job's GPUs and CPUs,
so Ray's scheduler places it on a node with free capacity. Agents see only ``Executor.run``
and never import Ray.

An agent's ``ctx.executor`` is an :class:`ExecutorFace` its host binds to it: every job runs as
that agent (a different requester is refused), it opens and reads only its own vault, and a job
on a vault carries the agent's signature over the job, the vault and the deal that pays for it,
which a Ray vault checks (any client of the cluster can call it). The executor hands vaults the
ledger they check payment on (tasks.vault).
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agora.tasks.errors import InvalidJob, JobFailed, TasksError
from agora.tasks.jobs import JobResult, JobSpec, Metering, Resources
from agora.tasks.store import ContentStore
from agora.tasks.vault import DataVault, ForgedRequest, request_digest

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


def run_job(spec: JobSpec, store_root: str, data_root: str | None = None) -> JobResult:
    """Run one job against the store at ``store_root``; raises TasksError.

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
    if kind == "classification":
        base = store.path(json.loads((model_path / "card.json").read_text())["base_model"])
    runner = _process_cache().get(model_path, kind, base)
    _cap_gpu_memory(spec)
    start = time.perf_counter()
    new_tokens, array, outputs, ids, labels = 0, None, [], [], []
    if kind == "embedding":
        array, tokens = runner.embed(texts, spec.batch_size)
    elif kind == "classification":
        array, tokens = runner.classify(texts, spec.batch_size)
        labels = [runner.labels[i] for i in array.argmax(axis=1)]
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
        threads=_torch_threads(),
        device=runner.device,
        gpu_ids=gpu_ids,
        node_id=node_id,
    )
    return _package(spec, metering, array, outputs, ids, labels)


def _package(spec: JobSpec, metering: Metering, array: Any, texts: list[str], token_ids: list[list[int]], labels: list[str]) -> JobResult:
    """The result of ``spec`` for its task, refused when larger than the job's output cap."""
    if spec.task == "generation":
        result = JobResult.from_texts(spec.job_id, texts, token_ids, metering)
    else:
        lists = {"task": "classification", "labels": labels} if spec.task == "classification" else {}
        result = JobResult.from_array(spec.job_id, array, metering, **lists)
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


def _retries(spec: JobSpec) -> dict[str, Any]:
    """Ray's retry options for a job: re-run it when its worker or node dies (a system failure),
    never when the job raised (an application failure would only fail again, and a cap it hit
    must stay hit)."""
    return {"max_retries": spec.crash_retries, "retry_exceptions": False}


class Executor(ABC):
    """Runs jobs for a compute provider, and hosts data owners' vaults (tasks.vault): a job
    whose spec names a vault runs there, where its dataset lives."""

    store_root: str
    ledger: Any = None  # what vaults check payment on: the runtime's ledger reader (or a Ray ledger actor)

    @abstractmethod
    def run(self, spec: JobSpec, timeout_s: float | None = None, requester: str = "", deal_id: str | None = None, proof: str = "") -> JobResult:
        """Run ``spec`` and return its result, or raise JobFailed / another TasksError. A job on
        a vault runs for ``requester`` under ``deal_id`` (``proof``: the requester's signature
        over the request, which a Ray vault checks)."""

    def use_ledger(self, ledger: Any) -> None:
        """Have the vaults this executor opens check payment on ``ledger`` (a runtime's)."""
        self.ledger = ledger

    def face(self, agent: Any, ledger: Any = None) -> ExecutorFace:
        """``agent``'s own executor: jobs only in its name, only its own vault."""
        return ExecutorFace(self, agent.address, agent.identity.sign_digest)

    @abstractmethod
    def open_vault(self, owner: str) -> tuple[str, Any]:
        """Create (or find) ``owner``'s vault on this node; returns its name and a client."""

    @abstractmethod
    def vault(self, name: str) -> Any:
        """A client of the vault called ``name`` (its methods as DataVault's)."""

    def vault_root(self, owner: str) -> Path:
        """Where a vault keeps its rows: beside the shared store, never inside it."""
        return Path(self.store_root).parent / "vaults" / owner.lower()


def vault_name(owner: str) -> str:
    return f"agora-vault-{owner.lower()}"


def vault_owner(name: str) -> str:
    """The owner a vault's name names ("" for a name not made by :func:`vault_name`)."""
    prefix = "agora-vault-"
    return name[len(prefix):] if name.startswith(prefix) else ""


class LocalExecutor(Executor):
    """In-process execution; models stay warm in the process-wide cache; vaults are objects."""

    def __init__(self, store_root: Path | str, ledger: Any = None) -> None:
        self.store_root = str(store_root)
        self.ledger = ledger
        self._vaults: dict[str, Any] = {}

    def run(self, spec: JobSpec, timeout_s: float | None = None, requester: str = "", deal_id: str | None = None, proof: str = "") -> JobResult:
        try:
            if spec.vault is not None:  # in process: the requester is what the agent's face set
                return self.vault(spec.vault).run(spec, requester, deal_id=deal_id)
            return run_job(spec, self.store_root)
        except TasksError:
            raise
        except Exception as exc:  # noqa: BLE001 - any model/runtime error is a job failure
            raise JobFailed(f"job {spec.job_id} failed: {exc!r}") from exc

    def open_vault(self, owner: str) -> tuple[str, Any]:
        name = vault_name(owner)
        if name not in self._vaults:
            self._vaults[name] = DataVault(owner, self.vault_root(owner), self.store_root, ledger=self.ledger)
        return name, self._vaults[name]

    def vault(self, name: str) -> Any:
        from agora.tasks.errors import UnknownArtifact

        found = self._vaults.get(name)
        if found is None:
            raise UnknownArtifact(f"no vault {name!r} in this process")
        return found


class RayExecutor(Executor):
    """Each job is a Ray task asking for the job's resources (logical GPUs work without one)."""

    def __init__(self, store_root: Path | str, ledger: Any = None, **task_options: Any) -> None:
        self.store_root = str(store_root)
        self.ledger = ledger  # the Ray ledger actor's handle: a vault actor reads escrows through it
        self.task_options = task_options
        self._opened: dict[str, Any] = {}

    def run(self, spec: JobSpec, timeout_s: float | None = None, requester: str = "", deal_id: str | None = None, proof: str = "") -> JobResult:
        import ray
        from ray.exceptions import GetTimeoutError, RayError

        from agora.tasks.scheduling import job_options

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
        try:
            handle = ray.get_actor(name)
        except ValueError:
            node = ray.get_runtime_context().get_node_id()
            options = {"name": name, "num_cpus": 0, "max_concurrency": 4, "get_if_exists": True}
            handle = ray.remote(RayVault).options(**options, scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(
                owner, str(self.vault_root(owner)), self.store_root, self.ledger
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

        from agora.tasks.scheduling import job_options

        options = {**job_options(spec), **_retries(spec), "scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=False)}
        try:
            return ray.get(ray.remote(run_job).options(**options).remote(spec, store_root, data_root))
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

    def __init__(self, owner: str, root: str, store_root: str, ledger: Any = None) -> None:
        from agora.chain.remote import RemoteLedger

        super().__init__(owner, root, store_root, ledger=None if ledger is None else RemoteLedger(ledger))

    def run(self, spec: JobSpec, requester: str, runner: Any = None, deal_id: str | None = None, proof: str = "") -> JobResult:
        import ray

        if self.ledger is not None and not signed_by(requester, request_digest(vault_name(self.owner), spec, deal_id, requester), proof):
            self._record(requester, spec.dataset_hash or "", "compute", False, "the request is not signed by its requester", spec, deal_id=deal_id or "")
            raise ForgedRequest(f"a request in the name of {requester} without its signature")
        return super().run(spec, requester, runner or _pinned_runner(ray.get_runtime_context().get_node_id()), deal_id)


def signed_by(address: str, digest: bytes, signature: str) -> bool:
    from agora.agents.identity import recover_digest

    try:
        return isinstance(address, str) and recover_digest(digest, signature) == address.lower()
    except Exception:  # noqa: BLE001 - a malformed signature is a forged one
        return False


class RequesterMismatch(TasksError, PermissionError):
    """A job an agent asked to run in another agent's name, or a vault not its own."""


class ExecutorFace:
    """An agent's ``ctx.executor`` (its host binds it): runs jobs as the agent and nobody else,
    signs each vault job with the agent's key, and reaches only the agent's own vault."""

    def __init__(self, executor: Executor, address: str, sign: Any) -> None:
        self._executor, self._address, self._sign = executor, address, sign
        self.store_root = executor.store_root

    def run(self, spec: JobSpec, timeout_s: float | None = None, requester: str = "", deal_id: str | None = None) -> JobResult:
        """Run ``spec`` as this agent; a job on a vault under ``deal_id`` (the escrow that pays
        for it; found on the ledger by the vault when not named)."""
        if requester and requester.lower() != self._address.lower():
            raise RequesterMismatch(f"{self._address} may not run a job as {requester}")
        proof = self._sign(request_digest(spec.vault, spec, deal_id, self._address)) if spec.vault is not None else ""
        return self._executor.run(spec, timeout_s, requester=self._address, deal_id=deal_id, proof=proof)

    def open_vault(self, owner: str) -> tuple[str, Any]:
        if owner.lower() != self._address.lower():
            raise RequesterMismatch(f"{self._address} may not open {owner}'s vault")
        return self._executor.open_vault(owner)

    def vault(self, name: str) -> Any:
        if name != vault_name(self._address):
            raise RequesterMismatch(f"{self._address} may reach only its own vault, not {name!r}")
        return self._executor.vault(name)

    def vault_root(self, owner: str) -> Path:
        return self._executor.vault_root(owner)
