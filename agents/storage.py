"""Per-agent key-value storage: what an agent keeps between messages that a runtime can snapshot.

Values must be JSON (checked on ``set``), so a snapshot is a plain document a runtime can write to
durable storage and a restarted host can load, whatever process or machine it lands on. Keys and
identities are never stored here: an agent's key lives in its Identity and nowhere else.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from agora.agents.errors import AgentsError

SNAPSHOT_VERSION = 1


class StorageError(AgentsError, ValueError):
    """A value that is not JSON, or a snapshot of an unknown version."""


class Storage:
    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = {}
        for key, value in (data or {}).items():
            self.set(key, value)

    def set(self, key: str, value: Any) -> None:
        if type(key) is not str or not key:
            raise StorageError(f"storage keys are non-empty str, got {key!r}")
        try:
            self._data[key] = json.loads(json.dumps(value))  # a copy: later changes to value do not leak in
        except (TypeError, ValueError) as exc:
            raise StorageError(f"value for {key!r} is not JSON: {exc}") from None

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def has(self, key: str) -> bool:
        return key in self._data

    def remove(self, key: str) -> None:
        self._data.pop(key, None)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._data))

    def __len__(self) -> int:
        return len(self._data)

    def snapshot(self) -> dict[str, Any]:
        """A versioned JSON document of everything stored."""
        return {"version": SNAPSHOT_VERSION, "data": json.loads(json.dumps(self._data))}

    @classmethod
    def restore(cls, snapshot: dict[str, Any]) -> Storage:
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise StorageError(f"storage snapshot version {snapshot.get('version')!r} is not {SNAPSHOT_VERSION}")
        return cls(snapshot["data"])
