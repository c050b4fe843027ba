"""Checks a buyer runs on a result before it pays: integrity, shape, sane values."""

from __future__ import annotations

import hashlib

import numpy as np

from tasks.errors import VerificationFailed
from tasks.jobs import JobResult


def verify_embeddings(result: JobResult, expected_items: int, expected_hash: str | None = None) -> None:
    """Raise VerificationFailed unless the result is what was paid for.

    - the bytes hash to ``result_hash`` (and to ``expected_hash`` when a spot check gave one);
    - one row per input item, a non-empty dimension;
    - every value finite and every row unit-length (the model normalizes its output).
    """
    raw = result.raw()
    actual = hashlib.sha256(raw).hexdigest()
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
