"""Model runners: load a verified model folder with transformers and run batches.

Every kind of model is a :class:`ModelRunner`: loaded from its folder (and, for a model built
on another, that base's runner), it runs a job's texts and says what it read and produced in one
:class:`RunOutput`, so :func:`agora.tasks.run.run_job` meters and packages every kind alike. The
kinds are a table (:data:`RUNNERS`): a new kind is its runner class, one :func:`register_runner`
call, and its test in the runner conformance suite (tests/tasks/test_runners.py).

accelerate places the model (``device_map="auto"``): on a GPU when the process sees one, on the
CPU otherwise, so the same code serves a laptop, a CI box and a GPU node.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from pathlib import Path
from typing import ClassVar, NamedTuple

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer


class RunOutput(NamedTuple):
    """What one run produced: an array (embeddings, class probabilities) or texts with their new
    token ids, labels for a classifier, the tokens read and the tokens generated."""

    array: np.ndarray | None = None
    texts: list[str] = []
    token_ids: list[list[int]] = []
    labels: list[str] = []
    tokens: int = 0
    new_tokens: int = 0


class ModelRunner(ABC):
    """One kind of model, loaded from a verified folder: what every kind offers ``run_job``."""

    kind: ClassVar[str]
    needs_base: ClassVar[bool] = False
    """Whether the model is built on another one (its card names the ``base_model``)."""

    @property
    @abstractmethod
    def device(self) -> str:
        """Where the model runs (``cpu``, ``cuda:0``)."""

    @classmethod
    def load(cls, path: Path, base: ModelRunner | None = None) -> ModelRunner:
        """The runner for the model in ``path`` (``base``: the runner of the model it builds on,
        when its card names one)."""
        return cls(path)  # type: ignore[call-arg]

    @abstractmethod
    def run(self, texts: list[str], batch_size: int, max_new_tokens: int) -> RunOutput:
        """Run ``texts`` in batches of ``batch_size`` (generation: at most ``max_new_tokens``
        new tokens each); the same texts and batch size give the same output."""


class EmbeddingRunner(ModelRunner):
    """Sentence embeddings, the all-MiniLM recipe: mean of token states, L2-normalized."""

    kind = "embedding"

    def __init__(self, model_path: Path | str) -> None:
        self.path = Path(model_path)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        device_map = "auto" if torch.cuda.is_available() else "cpu"
        self.model = AutoModel.from_pretrained(self.path, device_map=device_map).eval()

    @property
    def device(self) -> str:
        return str(next(self.model.parameters()).device)

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @torch.inference_mode()
    def embed(self, texts: list[str], batch_size: int = 32) -> tuple[np.ndarray, int]:
        """Return (embeddings ``[len(texts), dim]`` float32, number of real tokens seen)."""
        out: list[np.ndarray] = []
        tokens = 0
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(texts[start : start + batch_size], padding=True, truncation=True, max_length=256, return_tensors="pt").to(self.device)
            states = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy())
            tokens += int(batch["attention_mask"].sum())
        return (np.concatenate(out) if out else np.zeros((0, self.dim), "f4")), tokens

    def run(self, texts: list[str], batch_size: int, max_new_tokens: int) -> RunOutput:
        array, tokens = self.embed(texts, batch_size)
        return RunOutput(array=array, tokens=tokens)


class RunnerCache:
    """Keeps the last few loaded models warm in this process (least recently used goes); one
    entry per (folder, task): a classifier's base encoder is cached as an embedding model."""

    def __init__(self, capacity: int = 3) -> None:
        self.capacity = capacity
        self._runners: OrderedDict[tuple[Path, str], ModelRunner] = OrderedDict()
        self.loads = 0

    def get(self, path: Path, task: str = "embedding", base: Path | None = None) -> ModelRunner:
        key = (path, task)
        if key in self._runners:
            self._runners.move_to_end(key)
            return self._runners[key]
        kind = RUNNERS.get(task)
        if kind is None:
            raise ValueError(f"no runner for task {task!r}: {', '.join(sorted(RUNNERS))}")
        runner = kind.load(path, None if base is None else self.get(base, "embedding"))
        self.loads += 1
        self._runners[key] = runner
        while len(self._runners) > self.capacity:
            self._runners.popitem(last=False)
        return runner


class GenerationRunner(ModelRunner):
    """Greedy text generation with a causal LM. Prompts are padded on the left (so every row's
    new tokens start at the same position) and, for an instruct model with a chat template,
    wrapped as one user turn. Greedy decoding with a fixed batch shape is deterministic, which
    is what redundant execution compares."""

    kind = "generation"

    def __init__(self, model_path: Path | str) -> None:
        from transformers import AutoModelForCausalLM

        self.path = Path(model_path)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        device_map = "auto" if torch.cuda.is_available() else "cpu"
        self.model = AutoModelForCausalLM.from_pretrained(self.path, device_map=device_map, dtype=torch.float32).eval()

    @property
    def device(self) -> str:
        return str(next(self.model.parameters()).device)

    def _prompt(self, text: str) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            prompt = self.tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)
            assert isinstance(prompt, str)  # tokenize=False: the text, not token ids
            return prompt
        return text

    @torch.inference_mode()
    def generate(self, prompts: list[str], max_new_tokens: int, batch_size: int = 8) -> tuple[list[str], list[list[int]], int]:
        """Return (texts, new token ids per prompt, prompt tokens read)."""
        texts: list[str] = []
        ids: list[list[int]] = []
        read = 0
        eos = self.tokenizer.eos_token_id
        for start in range(0, len(prompts), batch_size):
            chunk = [self._prompt(p) for p in prompts[start : start + batch_size]]
            batch = self.tokenizer(chunk, padding=True, return_tensors="pt").to(self.device)
            read += int(batch["attention_mask"].sum())
            out = self.model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=self.tokenizer.pad_token_id)
            for row in out[:, batch["input_ids"].shape[1] :].tolist():
                if eos in row:  # what follows the first end-of-sequence is padding
                    row = row[: row.index(eos) + 1]
                ids.append(row)
                text = self.tokenizer.decode(row, skip_special_tokens=True)
                assert isinstance(text, str)  # one sequence decodes to one str
                texts.append(text)
        return texts, ids, read

    def run(self, texts: list[str], batch_size: int, max_new_tokens: int) -> RunOutput:
        outputs, ids, read = self.generate(texts, max_new_tokens, batch_size)
        return RunOutput(texts=outputs, token_ids=ids, tokens=read, new_tokens=sum(len(row) for row in ids))


class ClassificationRunner(ModelRunner):
    """An embedding model plus a trained head (tasks.models.train_head): label and class
    probabilities per text."""

    kind = "classification"
    needs_base = True

    def __init__(self, head_folder: Path | str, base: EmbeddingRunner) -> None:
        import json

        folder = Path(head_folder)
        card = json.loads((folder / "card.json").read_text())
        head = np.load(folder / "head.npz")
        self.labels: list[str] = list(card["labels"])
        self.weights, self.bias, self.base = head["weights"], head["bias"], base

    @property
    def device(self) -> str:
        return self.base.device

    def classify(self, texts: list[str], batch_size: int = 32) -> tuple[np.ndarray, int]:
        """Return (probabilities ``[len(texts), len(labels)]`` float32, tokens seen)."""
        from agora.tasks.models import softmax

        vectors, tokens = self.base.embed(texts, batch_size)
        return softmax(vectors.astype(np.float64) @ self.weights + self.bias).astype(np.float32), tokens

    def run(self, texts: list[str], batch_size: int, max_new_tokens: int) -> RunOutput:
        probabilities, tokens = self.classify(texts, batch_size)
        return RunOutput(array=probabilities, labels=[self.labels[i] for i in probabilities.argmax(axis=1)] if len(texts) else [], tokens=tokens)

    @classmethod
    def load(cls, path: Path, base: ModelRunner | None = None) -> ModelRunner:
        if not isinstance(base, EmbeddingRunner):  # its card names the embedding model it was trained on
            raise ValueError("a classifier needs its base embedding model")
        return cls(path, base)


RUNNERS: dict[str, type[ModelRunner]] = {"embedding": EmbeddingRunner, "generation": GenerationRunner, "classification": ClassificationRunner}
"""Model kind -> its runner class (with a ``load(path, base)`` that makes one)."""


def register_runner(runner: type[ModelRunner]) -> None:
    """Make ``runner.kind`` a kind of model jobs can run (``runner.load(path, base)`` makes it)."""
    from agora.tasks.jobs import MODEL_KINDS

    RUNNERS[runner.kind] = runner
    MODEL_KINDS.add(runner.kind)
