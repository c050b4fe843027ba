"""AI work: a content-addressed store, job specs, model runners, executors and verification."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agora.tasks.errors import IntegrityError, InvalidJob, JobFailed, TasksError, UnknownArtifact, VerificationFailed
from agora.tasks.executor import Executor, ExecutorFace, LocalExecutor, RequesterMismatch
from agora.tasks.jobs import JobResult, JobSpec, Metering, Resources
from agora.tasks.ray_executor import RayExecutor
from agora.tasks.run import read_dataset, run_job
from agora.tasks.store import ContentStore, digest_tree
from agora.tasks.verify import verify_embeddings, verify_result

if TYPE_CHECKING:  # at run time, imported on first use by __getattr__ below
    from agora.tasks.runner import ClassificationRunner, EmbeddingRunner, GenerationRunner, ModelRunner, RunnerCache, RunOutput

__all__ = [
    "ClassificationRunner",
    "ContentStore",
    "EmbeddingRunner",
    "GenerationRunner",
    "ModelRunner",
    "RunOutput",
    "Executor",
    "ExecutorFace",
    "RequesterMismatch",
    "IntegrityError",
    "InvalidJob",
    "JobFailed",
    "JobResult",
    "JobSpec",
    "LocalExecutor",
    "Metering",
    "RayExecutor",
    "Resources",
    "RunnerCache",
    "TasksError",
    "UnknownArtifact",
    "VerificationFailed",
    "digest_tree",
    "read_dataset",
    "run_job",
    "verify_embeddings",
    "verify_result",
]


def __getattr__(name: str) -> object:  # the runner pulls in torch: import it only when asked for
    if name in ("EmbeddingRunner", "GenerationRunner", "ClassificationRunner", "ModelRunner", "RunOutput", "RunnerCache"):
        from agora.tasks import runner

        return getattr(runner, name)
    raise AttributeError(name)
