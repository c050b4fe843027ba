"""Data vaults: a data owner's datasets, used on the owner's terms without being given away.

A dataset sold compute-to-data never enters the shared content store. It sits in its owner's
vault (a private store on the owner's node); a job that reads it runs *there* — in process for a
simulation, or as a Ray task pinned to the vault's node by node affinity on a cluster — and only
the job's result leaves. Each dataset has an :class:`AccessPolicy`: the price per use, which
models and tasks may touch it, and whether a raw download is allowed at all. Every attempt,
granted or refused, is written to the vault's access log for the owner.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tasks.errors import TasksError
from tasks.jobs import JobResult, JobSpec
from tasks.store import ContentStore


class AccessDenied(TasksError):
    """A use of a dataset its policy does not allow (the model, the task, a raw download)."""


class AccessPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    price_per_use: int = Field(ge=0)
    models: list[str] | None = Field(default=None, description="model hashes allowed to read it; None: any")
    tasks: list[Literal["embedding", "generation", "classification"]] = ["embedding", "classification", "generation"]
    raw_download: bool = Field(default=False, description="False: compute-to-data only, the rows never leave")


class AccessRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    at: float
    requester: str
    dataset_hash: str
    action: Literal["compute", "download"]
    granted: bool
    reason: str = ""
    job_id: str = ""
    model_hash: str = ""
    task: str = ""
    items: int = 0
    result_hash: str = ""


class DataVault:
    """The owner's private store of datasets, their policies and the access log. A plain class:
    a Ray deployment hosts it in an actor on the owner's node (see tasks.executor)."""

    def __init__(self, owner: str, root: str | Path, store_root: str | Path) -> None:
        self.owner = owner
        self.private = ContentStore(root)  # the rows live here only
        self.store_root = str(store_root)  # models come from the shared store
        self.policies: dict[str, AccessPolicy] = {}
        self.log: list[AccessRecord] = []
        self._lock = threading.Lock()

    def add(self, texts: list[str], name: str, policy: AccessPolicy | dict[str, Any]) -> str:
        """Store ``texts`` as a JSONL dataset under ``policy``; returns its hash."""
        data = "".join(json.dumps({"text": t}) + "\n" for t in texts).encode()
        digest = self.private.put_bytes(data, f"{name}.jsonl")
        self.policies[digest] = policy if isinstance(policy, AccessPolicy) else AccessPolicy.model_validate(policy)
        return digest

    def holds(self, digest: str) -> bool:
        return digest in self.policies

    def check(self, spec: JobSpec, requester: str) -> AccessPolicy:
        """The policy that allows ``spec`` to read its dataset, or AccessDenied (logged)."""
        digest = spec.dataset_hash or ""
        policy = self.policies.get(digest)
        reason = ""
        if policy is None:
            reason = f"this vault holds no dataset {digest[:12]}…"
        elif policy.models is not None and spec.model_hash not in policy.models:
            reason = f"model {spec.model_hash[:12]}… may not read this dataset"
        elif spec.task not in policy.tasks:
            reason = f"task {spec.task} is not allowed on this dataset"
        if reason:
            self._record(requester, digest, "compute", False, reason, spec)
            raise AccessDenied(reason)
        assert policy is not None
        return policy

    def run(self, spec: JobSpec, requester: str, runner: Any = None) -> JobResult:
        """Run ``spec`` against the dataset here and return only its result. ``runner`` runs the
        job (default: in this process); a Ray vault passes one pinned to its own node."""
        from tasks.executor import run_job

        self.check(spec, requester)
        try:
            result = (runner or run_job)(spec, self.store_root, str(self.private.root))
        except TasksError as exc:
            self._record(requester, spec.dataset_hash or "", "compute", False, f"job failed: {exc}", spec)
            raise
        self._record(requester, spec.dataset_hash or "", "compute", True, "", spec, result)
        return result

    def download(self, digest: str, requester: str) -> bytes:
        """The raw rows, only where the policy allows a download."""
        policy = self.policies.get(digest)
        if policy is None or not policy.raw_download:
            reason = "no such dataset" if policy is None else "compute-to-data only: the rows never leave the vault"
            self._record(requester, digest, "download", False, reason)
            raise AccessDenied(reason)
        self._record(requester, digest, "download", True)
        return self.private.file(digest).read_bytes()

    def access_log(self, digest: str | None = None) -> list[AccessRecord]:
        with self._lock:
            return [r for r in self.log if digest in (None, r.dataset_hash)]

    def _record(self, requester: str, digest: str, action: str, granted: bool, reason: str = "", spec: JobSpec | None = None, result: JobResult | None = None) -> None:
        record = AccessRecord(
            at=time.time(),
            requester=requester,
            dataset_hash=digest,
            action=action,  # type: ignore[arg-type]
            granted=granted,
            reason=reason,
            job_id=spec.job_id if spec else "",
            model_hash=spec.model_hash if spec else "",
            task=spec.task if spec else "",
            items=result.metering.items if result else 0,
            result_hash=result.result_hash if result else "",
        )
        with self._lock:
            self.log.append(record)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
