"""Compile the project's Vyper contracts from source, in-process and offline.

Artifacts (ABI + bytecode) are cached on disk by the sha256 of the source and the compiler
version, so a second run skips the ~0.5 s compile, and an edited contract is never served stale.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import vyper
from vyper.compiler import compile_code

CONTRACTS_DIR = Path(__file__).parent / "contracts"
CONTRACTS = ("Token", "Escrow", "PaymentChannel", "BatchSettlement", "Staking")
_FORMATS = ("abi", "bytecode", "bytecode_runtime")


def cache_dir() -> Path:
    """Where compiled artifacts live: $AGORA_CACHE or ~/.cache/agora (never in the repo)."""
    root = os.environ.get("AGORA_CACHE") or Path.home() / ".cache" / "agora"
    return Path(root) / "artifacts"


@cache
def compile_contract(name: str) -> dict[str, Any]:
    """Return ``{"abi", "bytecode", "bytecode_runtime"}`` for ``contracts/<name>.vy``."""
    source = (CONTRACTS_DIR / f"{name}.vy").read_text()
    key = hashlib.sha256(f"{vyper.__version__}\n{_FORMATS}\n{source}".encode()).hexdigest()[:24]
    path = cache_dir() / f"{name}-{key}.json"
    if path.exists():
        cached: dict[str, Any] = json.loads(path.read_text())
        return cached
    out = compile_code(source, output_formats=list(_FORMATS))
    artifact = {**{f: out[f] for f in _FORMATS}, "vyper": vyper.__version__}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(artifact))
    tmp.replace(path)
    return artifact
