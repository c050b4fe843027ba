"""Verification by redundancy and spot checks: honest providers agree whatever their batch
shapes, wrong work is singled out, and nobody is blamed without a majority."""

from __future__ import annotations

import random

import numpy as np

from agora.tasks import JobResult, JobSpec, LocalExecutor
from agora.tasks.verify import agree, agreement, redundant, spot_check
from tests.tasks.test_models import tiny_lm  # noqa: F401 - the fixture

TEXTS = [f"sentence number {i} about {topic}" for i, topic in enumerate(["gpus", "rain", "football", "bonds"] * 4)]


def _forged(result: JobResult, array: np.ndarray) -> JobResult:
    return JobResult.from_array(result.job_id, array.astype("f4"), result.metering)


def test_honest_batch_shapes_agree_and_wrong_work_is_singled_out(store, minilm_hash) -> None:
    run = LocalExecutor(store.root).run
    honest = {f"p{b}": run(JobSpec(job_id="r", model_hash=minilm_hash, inputs=TEXTS, batch_size=b)) for b in (1, 7, 32)}
    assert min(agreement(honest["p1"], r) for r in honest.values()) > 0.9999  # padding moves the last bits only
    rng = np.random.default_rng(0)
    noise = rng.normal(size=honest["p1"].array().shape)
    lazy = honest["p1"].array().copy()
    lazy[8:] = lazy[0]  # did half the work, copied the rest
    cheats = {
        "random": _forged(honest["p1"], noise / np.linalg.norm(noise, axis=1, keepdims=True)),
        "lazy": _forged(honest["p1"], lazy),
    }
    verdict = redundant({**honest, **cheats})
    assert verdict.verified and sorted(verdict.agreed) == ["p1", "p32", "p7"] and sorted(verdict.dissenters) == ["lazy", "random"]
    assert verdict.result is not None and agree(verdict.result, honest["p7"])
    split = redundant({"p1": honest["p1"], "lazy": cheats["lazy"]})
    assert not split.verified and split.dissenters == []  # one against one: nobody is blamed


def test_spot_checks_catch_a_partial_cheat_without_rerunning_everything(store, minilm_hash) -> None:
    executor = LocalExecutor(store.root)
    spec = JobSpec(job_id="s", model_hash=minilm_hash, inputs=TEXTS)
    honest = executor.run(spec)
    ok, rows = spot_check(honest, spec, executor.run, random.Random(1))
    assert ok and len(rows) == 4
    lazy = honest.array().copy()
    lazy[::2] = lazy[1]  # every other row faked
    caught, rows = spot_check(_forged(honest, lazy), spec, executor.run, random.Random(1))
    assert not caught, rows


def test_greedy_generations_agree_across_batch_shapes(store, tiny_lm) -> None:  # noqa: F811
    run = LocalExecutor(store.root).run
    prompts = ["the market opens", "a buyer asks for", "gpu", "the data owner"]
    one = run(JobSpec(job_id="g", model_hash=tiny_lm, task="generation", inputs=prompts, max_new_tokens=6, batch_size=1))
    four = run(JobSpec(job_id="g", model_hash=tiny_lm, task="generation", inputs=prompts, max_new_tokens=6, batch_size=4))
    assert agreement(one, four) >= 0.9
    wrong = JobResult.from_texts("g", ["x"] * 4, [[5, 6, 7, 8, 9, 10]] * 4, one.metering)
    verdict = redundant({"a": one, "b": four, "c": wrong})
    assert verdict.dissenters == ["c"] and sorted(verdict.agreed) == ["a", "b"]
