"""Snapshots: an agent's state written to durable storage and read back in another process.

What a snapshot holds: the agent object (its handlers' state: deals, books, counters), its
key-value storage, its inbox's replay windows (so a restored agent still refuses old nonces) and
its next nonce (so what it sends after a restore is not mistaken for a replay). What it never
holds: keys and live connections. Those are written as *references* (pickle's persistent ids):
an Identity as its address, the ledger, registry, content store and executor by name; loading
re-binds them to the new host's objects and to an Identity the caller supplies (from the
population's seed or phrase, or a keystore). A snapshot carries a schema version; one of another
version is refused.

Stores are pluggable: ``FolderStore`` (a local folder by default, or any shared path a cluster
mounts) writes each snapshot atomically (a temporary file, then a rename).
"""

from __future__ import annotations

import io
import os
import pickle
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents.errors import AgentsError
from agents.identity import Identity

SNAPSHOT_VERSION = 2  # 2: replay windows as holes; armed timers; handled count


class SnapshotError(AgentsError, ValueError):
    """A snapshot of another version, for another agent, or one that cannot be read."""


class SnapshotStore(ABC):
    """Where snapshots live: bytes under string keys."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def get(self, key: str) -> bytes | None: ...

    @abstractmethod
    def keys(self, prefix: str = "") -> list[str]: ...


class FolderStore(SnapshotStore):
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if not key or "/" in key or key.startswith("."):
            raise SnapshotError(f"snapshot keys are plain names, got {key!r}")
        return self.root / key

    def put(self, key: str, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._path(key))  # atomic: a reader sees the old snapshot or the new one

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        return path.read_bytes() if path.exists() else None

    def keys(self, prefix: str = "") -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.name.startswith(prefix) and not p.name.startswith("."))


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, refs: dict[int, str]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._refs = refs

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, Identity):
            return ("identity", obj.address)
        name = self._refs.get(id(obj))
        return None if name is None else ("ref", name)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, identity: Callable[[str], Identity], refs: dict[str, Any]) -> None:
        super().__init__(file)
        self._identity, self._refs = identity, refs

    def persistent_load(self, pid: Any) -> Any:
        kind, value = pid
        if kind == "identity":
            return self._identity(value)
        if kind == "ref" and value in self._refs:
            return self._refs[value]
        raise SnapshotError(f"the snapshot refers to {kind} {value!r}, which this host does not have")


def dump(state: dict[str, Any], refs: dict[str, Any]) -> bytes:
    """Pickle ``state`` with keys and the live objects in ``refs`` written as references."""
    buffer = io.BytesIO()
    try:
        _Pickler(buffer, {id(obj): name for name, obj in refs.items() if obj is not None}).dump({"version": SNAPSHOT_VERSION, **state})
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise SnapshotError(f"agent state cannot be snapshotted: {exc}") from None
    return buffer.getvalue()


def load(data: bytes, identity: Callable[[str], Identity], refs: dict[str, Any]) -> dict[str, Any]:
    """Read a snapshot, re-binding references to ``refs`` and identities through ``identity``."""
    try:
        state = _Unpickler(io.BytesIO(data), identity, refs).load()
    except SnapshotError:
        raise
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
        raise SnapshotError(f"unreadable snapshot: {type(exc).__name__}: {exc}") from None
    if state.get("version") != SNAPSHOT_VERSION:
        raise SnapshotError(f"snapshot version {state.get('version')!r} is not {SNAPSHOT_VERSION}")
    return state
