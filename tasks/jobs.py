"""Job specs and results: what a buyer asks for and what a provider hands back.

Results carry their embeddings as float32 bytes plus a sha256 of those bytes, so the buyer
can check integrity before paying, and the hash can be recorded beside the contract.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agora.tasks.errors import InvalidJob

MODEL_KINDS: set[str] = {"embedding", "generation", "classification"}
"""The kinds of model a job may run: one runner each (tasks.runner.RUNNERS; a registered runner
adds its kind here)."""


class Resources(BaseModel):
    """What a job needs from the provider's Ray node."""

    model_config = ConfigDict(frozen=True)

    gpus: float = Field(default=0.0, ge=0)
    cpus: float = Field(default=1.0, ge=0)
    gpu_memory_mb: int = Field(default=0, ge=0)


class JobSpec(BaseModel):
    """A job: a model by hash, the task it runs, texts inline or a dataset by hash, resources,
    and the caps that bound what it may use (the provider enforces them: a job never gets more
    than it paid for)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str = Field(min_length=1)
    model_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    task: str = Field(default="embedding", description="the kind of model: embedding, generation, classification or a registered one")
    inputs: list[str] | None = None
    dataset_hash: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    vault: str | None = Field(default=None, description="compute-to-data: the vault holding the dataset; the job runs there")
    resources: Resources = Resources()
    batch_size: int = Field(default=32, ge=1, le=4096)
    max_new_tokens: int = Field(default=32, ge=1, le=1024, description="generation: new tokens per prompt, at most")
    max_output_bytes: int = Field(default=64 << 20, ge=1, description="a larger result is refused, not delivered")
    timeout_s: float | None = Field(default=None, gt=0, description="wall-clock limit of the run")
    crash_retries: int = Field(
        default=1,
        ge=0,
        le=5,
        description="times Ray re-runs the job when its worker process or node dies (never when the job itself fails); inference is pure, so a re-run is safe, and the deadline still bounds the whole",
    )

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise InvalidJob(f"invalid job spec: {exc}") from None

    @field_validator("task")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        if v not in MODEL_KINDS:
            raise ValueError(f"task is one of {', '.join(sorted(MODEL_KINDS))}, got {v!r}")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> JobSpec:
        if (self.inputs is None) == (self.dataset_hash is None):
            raise ValueError("give exactly one of inputs or dataset_hash")
        return self

    def digest(self) -> str:
        """sha256 of the canonical JSON of the spec: the job hash a contract commits to."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class Metering(BaseModel):
    """What the job used: the basis of the bill and of utilization metrics. ``tokens`` are the
    input tokens read, ``new_tokens`` those generated; ``gpu_seconds`` is the run's wall time
    times the GPUs it held."""

    model_config = ConfigDict(frozen=True)

    items: int
    tokens: int
    seconds: float
    device: str
    new_tokens: int = 0
    gpu_seconds: float = 0.0
    threads: int = 0  # torch's intra-op threads: under Ray, the CPUs the task asked for
    gpu_ids: list[str] = []
    node_id: str = ""


class JobResult(BaseModel):
    """A job's output and its sha256. Arrays (embeddings; class probabilities) travel as base64
    float32 rows; generated texts with their token ids, and predicted labels, as lists. The hash
    covers the array bytes followed, when there are any, by the canonical JSON of the lists."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    shape: tuple[int, int]
    data_b64: str
    result_hash: str
    metering: Metering
    task: str = "embedding"
    texts: list[str] = []
    token_ids: list[list[int]] = []
    labels: list[str] = []

    @classmethod
    def from_array(cls, job_id: str, array: np.ndarray, metering: Metering, **lists: Any) -> JobResult:
        lists = {k: v for k, v in lists.items() if v != cls.model_fields[k].default}
        raw = np.ascontiguousarray(array, dtype="<f4").tobytes()
        shape = (int(array.shape[0]), int(array.shape[1]))
        return cls(
            job_id=job_id,
            shape=shape,
            data_b64=base64.b64encode(raw).decode(),
            result_hash=hashlib.sha256(raw + _lists_bytes(lists)).hexdigest(),
            metering=metering,
            **lists,
        )

    @classmethod
    def from_texts(cls, job_id: str, texts: list[str], token_ids: list[list[int]], metering: Metering, task: str = "generation") -> JobResult:
        return cls.from_array(job_id, np.zeros((len(texts), 0), "<f4"), metering, task=task, texts=texts, token_ids=token_ids)

    def raw(self) -> bytes:
        return base64.b64decode(self.data_b64)

    def content(self) -> bytes:
        """The bytes ``result_hash`` is the sha256 of."""
        lists = {k: getattr(self, k) for k in ("task", "texts", "token_ids", "labels") if getattr(self, k) != type(self).model_fields[k].default}
        return self.raw() + _lists_bytes(lists)

    def size(self) -> int:
        return len(self.content())

    def array(self) -> np.ndarray:
        return np.frombuffer(self.raw(), dtype="<f4").reshape(self.shape)


def _lists_bytes(lists: dict[str, Any]) -> bytes:
    """Canonical JSON of a result's non-array parts (nothing for a plain embedding result, so
    its hash stays the hash of its vectors)."""
    return json.dumps(lists, sort_keys=True, separators=(",", ":")).encode() if lists else b""
