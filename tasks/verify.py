"""Checks a buyer runs on a result before it pays: integrity, shape, sane values."""

from __future__ import annotations

import hashlib

import numpy as np

from tasks.errors import VerificationFailed
from tasks.jobs import JobResult, JobSpec


def verify_embeddings(result: JobResult, expected_items: int, expected_hash: str | None = None) -> None:
    """Raise VerificationFailed unless the result is what was paid for.

    - the bytes hash to ``result_hash`` (and to ``expected_hash`` when a spot check gave one);
    - one row per input item, a non-empty dimension;
    - every value finite and every row unit-length (the model normalizes its output).
    """
    raw = result.raw()
    actual = hashlib.sha256(result.content()).hexdigest()
    if actual != result.result_hash:
        raise VerificationFailed(f"result bytes hash to {actual[:12]}…, not the declared {result.result_hash[:12]}…")
    if expected_hash is not None and actual != expected_hash:
        raise VerificationFailed(f"result hash {actual[:12]}… differs from the expected {expected_hash[:12]}…")
    rows, dim = result.shape
    if rows != expected_items or dim <= 0 or len(raw) != rows * dim * 4:
        raise VerificationFailed(f"shape {result.shape} does not match {expected_items} items")
    array = result.array()
    if not np.isfinite(array).all():
        raise VerificationFailed("result has NaN or infinite values")
    norms = np.linalg.norm(array, axis=1)
    if rows and not np.allclose(norms, 1.0, atol=1e-3):
        raise VerificationFailed(f"rows are not unit-length (norms {norms.min():.3f}..{norms.max():.3f})")


def verify_result(result: JobResult, spec: JobSpec, expected_hash: str | None = None) -> None:
    """Raise VerificationFailed unless ``result`` is a well-formed answer to ``spec``: its
    content hashes to ``result_hash`` (and to ``expected_hash`` when given), and it has the
    task's shape — unit vectors for embeddings, probability rows and one label per item for
    classification, one text of at most ``max_new_tokens`` tokens per prompt for generation."""
    actual = hashlib.sha256(result.content()).hexdigest()
    if actual != result.result_hash:
        raise VerificationFailed(f"result content hashes to {actual[:12]}…, not the declared {result.result_hash[:12]}…")
    if expected_hash is not None and actual != expected_hash:
        raise VerificationFailed(f"result hash {actual[:12]}… differs from the expected {expected_hash[:12]}…")
    items = result.metering.items if spec.inputs is None else len(spec.inputs)
    if result.job_id != spec.job_id or result.task != spec.task:
        raise VerificationFailed(f"result is for {result.job_id}/{result.task}, not {spec.job_id}/{spec.task}")
    if spec.task == "embedding":
        verify_embeddings(result, items)
    elif spec.task == "classification":
        probabilities = result.array()
        if probabilities.shape[0] != items or len(result.labels) != items or probabilities.shape[1] < 2:
            raise VerificationFailed(f"{probabilities.shape[0]} rows and {len(result.labels)} labels for {items} items")
        if not np.isfinite(probabilities).all() or not np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4):
            raise VerificationFailed("class probabilities are not distributions")
    else:
        if len(result.texts) != items or len(result.token_ids) != items:
            raise VerificationFailed(f"{len(result.texts)} texts for {items} prompts")
        longest = max((len(ids) for ids in result.token_ids), default=0)
        if longest > spec.max_new_tokens:
            raise VerificationFailed(f"a text of {longest} tokens exceeds the {spec.max_new_tokens} paid for")
