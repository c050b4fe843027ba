"""A shard's durable state: a checkpoint plus an append-only journal, in a folder that outlives
the shard's process and node (a local folder by default, a shared mount on a cluster).

Why this shape: a shard acknowledges a batch of envelopes only after the state that handling
them produced is durable, and ships what its agents sent only after that state is durable too
(output commit). Writing every touched agent's snapshot file on every batch would cost a file
per agent per batch; instead each commit appends ONE record to the journal: the snapshots of the
agents touched since the last commit, the outbound batches they produced, the batches the other
shards have acknowledged since, and any change of who is hosted here. When the journal has
grown past the last checkpoint's size (and ``min_bytes``), the shard writes a full checkpoint
(atomically, under a new generation) and starts a new journal: recovery reads one checkpoint and
a tail no longer than it, and the cost of checkpoints stays a constant share of the writes.

A record is framed by its length and a CRC-32; a torn last record (the process died mid-write)
fails the check and is dropped, which is safe: nothing in it had been acknowledged or shipped.
``fsync`` makes each record survive a machine crash, not only a process crash (slower).

The folder and its files are the operator's alone, like every state folder that holds pickles
(agents.snapshot): made 0o700 and 0o600, and refused at recovery when others may write them.
"""

from __future__ import annotations

import os
import pickle
import struct
import zlib
from pathlib import Path
from typing import Any

from agora.agents.errors import AgentsError
from agora.agents.snapshot import SNAPSHOT_VERSION, FolderStore, read_private

_FRAME = struct.Struct("<II")  # payload length, crc32


def _open_private(path: Path, how: int) -> Any:
    """``path`` opened for writing (``how``: os.O_APPEND or os.O_TRUNC), made 0o600 whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | how, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "ab" if how == os.O_APPEND else "wb")


class JournalError(AgentsError, ValueError):
    """A checkpoint of another version, or a journal folder that cannot be used."""


class ShardState:
    """What recovery rebuilds: each agent's latest snapshot, the outbound batches not yet
    acknowledged, and the shard's metadata (where its agents' keys come from, placement)."""

    def __init__(self) -> None:
        self.agents: dict[str, bytes] = {}
        self.unacked: dict[int, tuple[int, list[Any]]] = {}  # batch id -> (destination shard, envelopes)
        self.meta: dict[str, Any] = {}
        self.next_batch = 0

    def apply(self, record: dict[str, Any]) -> None:
        self.agents.update(record.get("agents", {}))
        for batch_id, dest, envelopes in record.get("out", ()):
            self.unacked[batch_id] = (dest, envelopes)
            self.next_batch = max(self.next_batch, batch_id + 1)
        for batch_id in record.get("acked", ()):
            self.unacked.pop(batch_id, None)
        self.meta.update(record.get("meta", {}))


class Journal:
    def __init__(self, root: str | Path, min_bytes: int = 8 << 20, fsync: bool = False) -> None:
        self.root = Path(root)
        self.store = FolderStore(self.root)
        self.min_bytes, self.fsync = min_bytes, fsync
        self.generation, self.records, self.bytes, self.checkpoint_bytes = 0, 0, 0, 0
        self._file: Any = None

    # -- reading --------------------------------------------------------------------------
    def recover(self) -> ShardState:
        """The state the last durable record left (empty for a new shard); opens the journal
        for appending after it."""
        state = ShardState()
        data = self.store.get("checkpoint")
        if data is not None:
            self.checkpoint_bytes = len(data)
            checkpoint = pickle.loads(data)
            if checkpoint.get("version") != SNAPSHOT_VERSION:
                raise JournalError(f"checkpoint version {checkpoint.get('version')!r} is not {SNAPSHOT_VERSION}")
            self.generation = checkpoint["generation"]
            state.apply(checkpoint["state"])
        path = self._path(self.generation)
        good = 0
        raw = read_private(path)
        if raw is not None:
            while good + _FRAME.size <= len(raw):
                size, crc = _FRAME.unpack_from(raw, good)
                body = raw[good + _FRAME.size : good + _FRAME.size + size]
                if len(body) < size or zlib.crc32(body) != crc:
                    break  # a torn tail: never acknowledged, so never relied upon
                state.apply(pickle.loads(body))
                good += _FRAME.size + size
                self.records += 1
            self.bytes = good
            if good < len(raw):
                with open(path, "r+b") as f:
                    f.truncate(good)
        for stale in self.root.glob("journal-*"):  # left by a crash between checkpoint and unlink
            if stale != path:
                stale.unlink(missing_ok=True)
        self._file = _open_private(path, os.O_APPEND)
        return state

    def _path(self, generation: int) -> Path:
        return self.root / f"journal-{generation}"

    # -- writing --------------------------------------------------------------------------
    def append(self, record: dict[str, Any]) -> None:
        body = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
        self._file.write(_FRAME.pack(len(body), zlib.crc32(body)) + body)
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())
        self.records += 1
        self.bytes += _FRAME.size + len(body)

    def due(self) -> bool:
        return self.bytes >= max(self.min_bytes, self.checkpoint_bytes)

    def compact(self, full: dict[str, Any]) -> None:
        """Write ``full`` (a record holding everything) as the next generation's checkpoint
        and start its empty journal; the old journal goes once the checkpoint is in place."""
        old = self.generation
        self.generation += 1
        self._file.close()
        self._file = _open_private(self._path(self.generation), os.O_TRUNC)
        checkpoint = {"version": SNAPSHOT_VERSION, "generation": self.generation, "state": full}
        data = pickle.dumps(checkpoint, protocol=pickle.HIGHEST_PROTOCOL)
        self.store.put("checkpoint", data)  # atomic rename
        self._path(old).unlink(missing_ok=True)
        self.records, self.bytes, self.checkpoint_bytes = 0, 0, len(data)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
