from __future__ import annotations

import numpy as np
import pytest

from agora.tasks import InvalidJob, JobResult, JobSpec, Metering, VerificationFailed, verify_embeddings

H = "a" * 64


def _result(array: np.ndarray) -> JobResult:
    return JobResult.from_array("j", array, Metering(items=len(array), tokens=1, seconds=0.1, device="cpu"))


def test_spec_validation_names_the_problem() -> None:
    JobSpec(job_id="j", model_hash=H, inputs=["x"])
    with pytest.raises(InvalidJob, match="model_hash"):
        JobSpec(job_id="j", model_hash="xyz", inputs=["x"])
    with pytest.raises(InvalidJob, match="exactly one"):
        JobSpec(job_id="j", model_hash=H)
    with pytest.raises(InvalidJob, match="gpus"):
        JobSpec(job_id="j", model_hash=H, inputs=["x"], resources={"gpus": -1})


def test_spec_digest_is_stable_and_sensitive() -> None:
    a = JobSpec(job_id="j", model_hash=H, inputs=["x"])
    assert a.digest() == JobSpec(job_id="j", model_hash=H, inputs=["x"]).digest()
    assert a.digest() != JobSpec(job_id="j", model_hash=H, inputs=["y"]).digest()


def test_verify_accepts_good_and_rejects_bad() -> None:
    rng = np.random.default_rng(0)
    good = rng.normal(size=(4, 8)).astype("f4")
    good /= np.linalg.norm(good, axis=1, keepdims=True)
    verify_embeddings(_result(good), 4)
    with pytest.raises(VerificationFailed, match="shape"):
        verify_embeddings(_result(good), 5)
    with pytest.raises(VerificationFailed, match="unit-length"):
        verify_embeddings(_result(good * 2), 4)
    forged = _result(good).model_copy(update={"result_hash": "0" * 64})
    with pytest.raises(VerificationFailed, match="hash"):
        verify_embeddings(forged, 4)
    with pytest.raises(VerificationFailed, match="expected"):
        verify_embeddings(_result(good), 4, expected_hash="f" * 64)
