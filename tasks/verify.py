"""Checks a buyer runs on a result before it pays: integrity, shape, sane values."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from agora.tasks.errors import VerificationFailed
from agora.tasks.jobs import JobResult, JobSpec


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


# -- redundancy and spot checks ---------------------------------------------------------------
# Honest providers differ in the last bits: a batch of 1 and a batch of 32 pad differently, and
# GPUs and CPUs sum in different orders. Agreement is therefore judged with tolerances that
# such differences never cross and that wrong work does: embeddings row by row by cosine,
# classifications by label (and probabilities within a tolerance), generations token by token
# with an agreement threshold (greedy decoding may flip a near-tie late in a sequence).
EMBEDDING_COSINE = 0.999
PROBABILITY_ATOL = 1e-3
TOKEN_AGREEMENT = 0.9


def agreement(a: JobResult, b: JobResult) -> float:
    """How far two results of the same job agree, in [0, 1]: the worst row's cosine for
    embeddings, the share of equal labels for classifications, the share of equal tokens
    (position by position, over the longer sequence) for generations."""
    if a.task != b.task:
        return 0.0
    if a.task == "generation":
        if len(a.token_ids) != len(b.token_ids):
            return 0.0
        same = total = 0
        for x, y in zip(a.token_ids, b.token_ids, strict=False):
            total += max(len(x), len(y))
            same += sum(1 for i, j in zip(x, y, strict=False) if i == j)
        return same / total if total else 1.0
    if a.shape != b.shape:
        return 0.0
    if a.task == "classification":
        if not a.labels:
            return 1.0
        labels = sum(1 for x, y in zip(a.labels, b.labels, strict=False) if x == y) / len(a.labels)
        close = bool(np.allclose(a.array(), b.array(), atol=PROBABILITY_ATOL))
        return labels if close else min(labels, 0.5)
    u, v = a.array().astype(np.float64), b.array().astype(np.float64)
    if not len(u):
        return 1.0
    cos = (u * v).sum(axis=1) / np.maximum(np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1), 1e-12)
    return float(cos.min())


def agree(a: JobResult, b: JobResult) -> bool:
    threshold = {"embedding": EMBEDDING_COSINE, "classification": 1.0, "generation": TOKEN_AGREEMENT}[a.task]
    return agreement(a, b) >= threshold


class Verdict(BaseModel):
    """The outcome of running one job on several providers: the providers in the largest group
    of mutually agreeing results (strictly more than half of them), those outside it, and one
    result of the agreeing group to use. No majority: nobody is blamed, the job is unverified."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    agreed: list[str]
    dissenters: list[str]
    result: JobResult | None

    @property
    def verified(self) -> bool:
        return self.result is not None


def redundant(results: dict[str, JobResult]) -> Verdict:
    """Compare the results several providers returned for the same job (provider -> result)."""
    providers = sorted(results)
    best: list[str] = []
    for p in providers:
        group = [q for q in providers if q == p or agree(results[p], results[q])]
        if len(group) > len(best):
            best = group
    if len(best) * 2 <= len(providers):
        return Verdict(agreed=[], dissenters=[], result=None)
    return Verdict(agreed=best, dissenters=[p for p in providers if p not in best], result=results[best[0]])


def spot_check(result: JobResult, spec: JobSpec, rerun: Any, rng: random.Random, sample: int = 4) -> tuple[bool, list[int]]:
    """Re-run ``sample`` randomly chosen inputs of an inline-input job on a trusted runner
    (``rerun(spec) -> JobResult``, e.g. a LocalExecutor's run) and compare those rows with the
    delivered ones; returns (they agree, the rows checked). A cheater cannot know which rows."""
    if spec.inputs is None:
        raise VerificationFailed("spot checks need the inputs inline (a dataset job is checked by redundancy)")
    rows = sorted(rng.sample(range(len(spec.inputs)), min(sample, len(spec.inputs))))
    probe = spec.model_copy(update={"job_id": f"{spec.job_id}-spot", "inputs": [spec.inputs[i] for i in rows]})
    fresh = rerun(probe)
    picked = _rows(result, rows, probe.job_id)
    return agree(picked, fresh), rows


def _rows(result: JobResult, rows: list[int], job_id: str) -> JobResult:
    """The given rows of a result, as a result of their own (for comparison only)."""
    if result.task == "generation":
        return JobResult.from_texts(job_id, [result.texts[i] for i in rows], [result.token_ids[i] for i in rows], result.metering)
    lists = {"task": result.task, "labels": [result.labels[i] for i in rows]} if result.task == "classification" else {}
    return JobResult.from_array(job_id, result.array()[rows], result.metering, **lists)
