"""Model runners: load a verified model folder with transformers and run batches.

accelerate places the model (``device_map="auto"``): on a GPU when the process sees one, on the
CPU otherwise, so the same code serves a laptop, a CI box and a GPU node.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer


class EmbeddingRunner:
    """Sentence embeddings, the all-MiniLM recipe: mean of token states, L2-normalized."""

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
            batch = self.tokenizer(
                texts[start : start + batch_size], padding=True, truncation=True, max_length=256, return_tensors="pt"
            ).to(self.device)
            states = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy())
            tokens += int(batch["attention_mask"].sum())
        return (np.concatenate(out) if out else np.zeros((0, self.dim), "f4")), tokens


class RunnerCache:
    """Keeps the last few loaded models warm in this process (least recently used goes); one
    entry per (folder, task): a classifier's base encoder is cached as an embedding model."""

    def __init__(self, capacity: int = 3) -> None:
        self.capacity = capacity
        self._runners: OrderedDict[tuple[Path, str], Any] = OrderedDict()
        self.loads = 0

    def get(self, path: Path, task: str = "embedding", base: Path | None = None) -> Any:
        key = (path, task)
        if key in self._runners:
            self._runners.move_to_end(key)
            return self._runners[key]
        if task == "embedding":
            runner: Any = EmbeddingRunner(path)
        elif task == "generation":
            runner = GenerationRunner(path)
        elif task == "classification":
            if base is None:
                raise ValueError("a classifier needs its base embedding model")
            runner = ClassificationRunner(path, self.get(base, "embedding"))
        else:
            raise ValueError(f"no runner for task {task!r}")
        self.loads += 1
        self._runners[key] = runner
        while len(self._runners) > self.capacity:
            self._runners.popitem(last=False)
        return runner


class GenerationRunner:
    """Greedy text generation with a causal LM. Prompts are padded on the left (so every row's
    new tokens start at the same position) and, for an instruct model with a chat template,
    wrapped as one user turn. Greedy decoding with a fixed batch shape is deterministic, which
    is what redundant execution compares."""

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
            out = self.model.generate(
                **batch, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=self.tokenizer.pad_token_id
            )
            for row in out[:, batch["input_ids"].shape[1] :].tolist():
                if eos in row:  # what follows the first end-of-sequence is padding
                    row = row[: row.index(eos) + 1]
                ids.append(row)
                text = self.tokenizer.decode(row, skip_special_tokens=True)
                assert isinstance(text, str)  # one sequence decodes to one str
                texts.append(text)
        return texts, ids, read


class ClassificationRunner:
    """An embedding model plus a trained head (tasks.models.train_head): label and class
    probabilities per text."""

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
