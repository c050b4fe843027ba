"""Model runners: load a verified model folder with transformers and run batches.

accelerate places the model (``device_map="auto"``): on a GPU when the process sees one, on the
CPU otherwise, so the same code serves a laptop, a CI box and a GPU node.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

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
    """Keeps the last few loaded models warm in this process (least recently used goes)."""

    def __init__(self, capacity: int = 2) -> None:
        self.capacity = capacity
        self._runners: OrderedDict[Path, EmbeddingRunner] = OrderedDict()

    def get(self, path: Path) -> EmbeddingRunner:
        if path in self._runners:
            self._runners.move_to_end(path)
            return self._runners[path]
        runner = EmbeddingRunner(path)
        self._runners[path] = runner
        while len(self._runners) > self.capacity:
            self._runners.popitem(last=False)
        return runner
