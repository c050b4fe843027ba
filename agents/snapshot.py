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

A state folder is the operator's alone (issue 18): loading a pickle runs whatever code it names,
so whoever can write where snapshots, journals or a deployment's kept state are loaded from can
run code as the operator. Folders are made 0o700 and files 0o600 whatever the umask
(``private_folder``, ``write_private``), and at load a folder or file that is group- or
world-writable, owned by another user, or (a file) a symbolic link is refused with
``UnsafeStateFolder``, which names the path, the problem and the fix (``read_private``). Only the
folder that holds the files is checked, not every parent: one that others could swap for their
own would be theirs, and so refused.
"""

from __future__ import annotations

import errno
import io
import os
import pickle
import stat
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agora.agents.errors import AgentsError
from agora.agents.identity import Identity

SNAPSHOT_VERSION = 3  # 2: replay windows as holes; armed timers; handled count. 3: agora.* paths, venues, buyer deal records


class SnapshotError(AgentsError, ValueError):
    """A snapshot of another version, for another agent, or one that cannot be read."""


class UnsafeStateFolder(AgentsError, PermissionError):
    """A state folder or file that someone besides its owner could write (or that another user
    owns): pickles are never loaded from it. The message names the path, the problem and the fix."""


def check_private(path: str | Path, st: os.stat_result | None = None) -> None:
    """Refuse ``path`` (its ``st``, when the caller holds it open) unless this user owns it and
    neither its group nor the world may write it."""
    st = os.stat(path) if st is None else st
    folder = stat.S_ISDIR(st.st_mode)
    what, mode = "state folder" if folder else "state file", stat.S_IMODE(st.st_mode)
    if st.st_uid != os.geteuid():
        raise UnsafeStateFolder(
            f"{what} {path} is owned by uid {st.st_uid}, not this user (uid {os.geteuid()}): "
            f"only its owner may write where pickles are loaded; chown it or use a folder of your own"
        )
    if mode & 0o022:
        who = {0o020: "group-writable", 0o002: "world-writable"}.get(mode & 0o022, "group- and world-writable")
        raise UnsafeStateFolder(
            f"{what} {path} is {who} (mode 0o{mode:03o}): only its owner may write where pickles are loaded; chmod {'700' if folder else '600'} {path}"
        )


def private_folder(path: str | Path) -> Path:
    """``path`` as a folder only its owner may write: the missing part made 0o700 (whatever the
    umask), an existing one checked."""
    path = Path(path)
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            continue  # made meanwhile (another shard of the same deployment): checked below
        os.chmod(folder, 0o700)  # a umask takes bits away, never adds: exact, whatever it was
    path = missing[0] if missing else path
    check_private(path)
    return path


def read_private(path: str | Path) -> bytes | None:
    """The bytes of state file ``path`` (None when there is none), refused unless it is a plain
    file of this user that nobody else may write (checked on the open file: no swap in between)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeStateFolder(f"state file {path} is a symbolic link: pickles are loaded only from the state folder's own files") from None
        raise
    with os.fdopen(fd, "rb") as f:
        check_private(path, os.fstat(f.fileno()))
        return f.read()


def write_private(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (a temporary file, then a rename), 0o600, in a folder
    made or checked owner-only: a reader sees the old file or the new one, never a torn one."""
    folder = private_folder(Path(path).parent)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")  # made 0o600 whatever the umask
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class SnapshotStore(ABC):
    """Where snapshots live: bytes under string keys."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def get(self, key: str) -> bytes | None: ...

    @abstractmethod
    def keys(self, prefix: str = "") -> list[str]: ...


class FolderStore(SnapshotStore):
    """Snapshots as files of a folder only its owner may write (made so, or checked)."""

    def __init__(self, root: str | Path) -> None:
        self.root = private_folder(root)

    def _path(self, key: str) -> Path:
        if not key or "/" in key or key.startswith("."):
            raise SnapshotError(f"snapshot keys are plain names, got {key!r}")
        return self.root / key

    def put(self, key: str, data: bytes) -> None:
        write_private(self._path(key), data)  # atomic: a reader sees the old snapshot or the new one

    def get(self, key: str) -> bytes | None:
        check_private(self.root)  # again at each load: the folder may have been opened up since
        return read_private(self._path(key))

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
