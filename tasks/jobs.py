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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tasks.errors import InvalidJob


class Resources(BaseModel):
    """What a job needs from the provider's Ray node."""

    model_config = ConfigDict(frozen=True)

    gpus: float = Field(default=0.0, ge=0)
    cpus: float = Field(default=1.0, ge=0)
    gpu_memory_mb: int = Field(default=0, ge=0)


class JobSpec(BaseModel):
    """An embedding job: a model by hash, texts inline or a dataset by hash, resources."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str = Field(min_length=1)
    model_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    task: str = "embedding"
    inputs: list[str] | None = None
    dataset_hash: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    resources: Resources = Resources()
    batch_size: int = Field(default=32, ge=1, le=4096)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise InvalidJob(f"invalid job spec: {exc}") from None

    @model_validator(mode="after")
    def _one_source(self) -> JobSpec:
        if (self.inputs is None) == (self.dataset_hash is None):
            raise ValueError("give exactly one of inputs or dataset_hash")
        if self.task != "embedding":
            raise ValueError(f"task {self.task!r} is not supported yet (embedding only)")
        return self

    def digest(self) -> str:
        """sha256 of the canonical JSON of the spec: the job hash a contract commits to."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class Metering(BaseModel):
    """What the job used: the basis of the bill and of utilization metrics."""

    model_config = ConfigDict(frozen=True)

    items: int
    tokens: int
    seconds: float
    device: str
    gpu_ids: list[str] = []
    node_id: str = ""


class JobResult(BaseModel):
    """Embeddings as base64 float32 rows, their sha256, and the metering."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    shape: tuple[int, int]
    data_b64: str
    result_hash: str
    metering: Metering

    @classmethod
    def from_array(cls, job_id: str, array: np.ndarray, metering: Metering) -> JobResult:
        raw = np.ascontiguousarray(array, dtype="<f4").tobytes()
        return cls(
            job_id=job_id,
            shape=(int(array.shape[0]), int(array.shape[1])),
            data_b64=base64.b64encode(raw).decode(),
            result_hash=hashlib.sha256(raw).hexdigest(),
            metering=metering,
        )

    def raw(self) -> bytes:
        return base64.b64decode(self.data_b64)

    def array(self) -> np.ndarray:
        return np.frombuffer(self.raw(), dtype="<f4").reshape(self.shape)
