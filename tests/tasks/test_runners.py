"""One contract, every kind of model: the runner conformance suite.

Each kind's runner (tasks.runner.RUNNERS) is loaded the way a job loads it and must: say where it
runs; answer one row per text; count the tokens it read (and generated); give the same output for
the same texts and batch size (what redundant execution and verification compare); answer an empty
batch with nothing; and run through ``run_job`` into a result that verifies. A runner registered
for a new kind runs this suite by adding its fixture here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from agora.tasks import ContentStore, JobSpec, LocalExecutor, digest_tree
from agora.tasks.models import train_head, write_classifier
from agora.tasks.runner import RUNNERS, EmbeddingRunner, ModelRunner, RunOutput
from agora.tasks.verify import verify_result

TEXTS = ["the market opens at nine", "a buyer asks for two GPU hours", "posted prices", "a seller", "rain"]


@pytest.fixture(scope="module")
def folders(store: ContentStore, model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, Path]]:
    """A stored model of each kind: (its hash, its folder)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    lm = tmp_path_factory.mktemp("runner-lm")
    torch.manual_seed(0)
    vocab = json.loads((model_dir / "tokenizer.json").read_text())["model"]["vocab"]
    GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=len(vocab), bos_token_id=101, eos_token_id=102, pad_token_id=0)).save_pretrained(lm)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(model_dir / name, lm / name)
    settings = json.loads((lm / "tokenizer_config.json").read_text())
    (lm / "tokenizer_config.json").write_text(json.dumps({**settings, "eos_token": "[SEP]"}))
    minilm = digest_tree(model_dir)
    vectors, _ = EmbeddingRunner(model_dir).embed(TEXTS * 2)
    head = train_head(vectors, ["a", "b", "a", "b", "a"] * 2, epochs=20)
    classifier = write_classifier(tmp_path_factory.mktemp("runner-head") / "head", head, minilm)
    found = {"embedding": (minilm, model_dir), "generation": (store.put(lm), lm), "classification": (store.put(classifier), classifier)}
    assert set(found) == set(RUNNERS), "every registered kind needs a model here"
    return found


@pytest.fixture(params=sorted(RUNNERS))
def runner(request: pytest.FixtureRequest, folders: dict[str, tuple[str, Path]], model_dir: Path) -> ModelRunner:
    kind = request.param
    base = EmbeddingRunner(model_dir) if kind == "classification" else None
    made = RUNNERS[kind].load(folders[kind][1], base)
    assert isinstance(made, ModelRunner) and made.kind == kind
    return made


def _same(a: RunOutput, b: RunOutput) -> bool:
    arrays = (a.array is None and b.array is None) or (a.array is not None and b.array is not None and np.array_equal(a.array, b.array))
    return arrays and (a.texts, a.token_ids, a.labels, a.tokens, a.new_tokens) == (b.texts, b.token_ids, b.labels, b.tokens, b.new_tokens)


def test_a_row_per_text_metered_and_repeatable(runner: ModelRunner) -> None:
    assert runner.device in ("cpu",) or runner.device.startswith("cuda")
    out = runner.run(TEXTS, 2, 5)
    rows = len(out.texts) if out.array is None else out.array.shape[0]
    assert rows == len(TEXTS) and out.tokens >= len(TEXTS)
    if out.token_ids:
        assert len(out.token_ids) == len(TEXTS) and all(1 <= len(ids) <= 5 for ids in out.token_ids)
        assert out.new_tokens == sum(len(ids) for ids in out.token_ids)
    else:
        assert out.new_tokens == 0
    if out.labels:
        assert len(out.labels) == len(TEXTS)
    assert _same(out, runner.run(TEXTS, 2, 5))  # the same texts and batches: the same answer


def test_an_empty_batch_is_answered_with_nothing(runner: ModelRunner) -> None:
    out = runner.run([], 4, 5)
    assert out.tokens == 0 and out.new_tokens == 0 and not out.texts and not out.labels
    assert out.array is None or out.array.shape[0] == 0


@pytest.mark.parametrize("kind", sorted(RUNNERS))
def test_every_kind_runs_as_a_job_whose_result_verifies(kind: str, store: ContentStore, folders: dict[str, tuple[str, Path]]) -> None:
    spec = JobSpec(job_id=f"conform-{kind}", model_hash=folders[kind][0], task=kind, inputs=TEXTS, max_new_tokens=4, batch_size=2)
    result = LocalExecutor(store.root).run(spec)
    verify_result(result, spec)
    assert result.metering.items == len(TEXTS) and result.metering.tokens >= len(TEXTS)


def test_a_job_for_a_kind_nobody_runs_is_refused() -> None:
    from agora.tasks import InvalidJob

    with pytest.raises(InvalidJob, match="task is one of classification, embedding, generation"):
        JobSpec(job_id="x", model_hash="a" * 64, task="translation", inputs=["x"])
