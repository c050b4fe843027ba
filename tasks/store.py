"""A content-addressed store for models and datasets: sha256 names everything.

An artifact (a file or a folder) is named by :func:`digest_tree`, a sha256 over its files'
relative paths and contents, so the name proves what is inside. The digest is checked again
whenever an artifact is opened: a tampered file is refused, never silently loaded.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from agora.tasks.errors import IntegrityError, UnknownArtifact

_CHUNK = 1 << 20


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def digest_tree(path: Path) -> str:
    """sha256 over ``relative-path NUL file-sha256`` lines of every file, in sorted order."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    h = hashlib.sha256()
    for f in files:
        rel = f.name if path.is_file() else f.relative_to(path).as_posix()
        h.update(f"{rel}\0{_file_sha256(f)}\n".encode())
    return h.hexdigest()


def default_root() -> Path:
    """$AGORA_HOME/store, else ~/.cache/agora/store: never inside the repository."""
    home = os.environ.get("AGORA_HOME") or Path.home() / ".cache" / "agora"
    return Path(home) / "store"


class ContentStore:
    """A folder of artifacts, each under ``<root>/<sha256>/``."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        self.root.mkdir(parents=True, exist_ok=True)
        self._verified: dict[str, tuple[int, ...]] = {}

    def put(self, source: Path | str) -> str:
        """Add a file or folder; returns its digest. Adding the same content twice is free."""
        source = Path(source)
        if not source.exists():
            raise UnknownArtifact(f"nothing to store at {source}")
        digest = digest_tree(source)
        target = self.root / digest
        if target.exists():
            return digest
        staging = Path(tempfile.mkdtemp(dir=self.root, prefix=".put-"))
        if source.is_dir():
            shutil.copytree(source, staging, dirs_exist_ok=True)
        else:
            shutil.copy2(source, staging / source.name)
        try:
            staging.rename(target)
        except OSError:  # another process stored the same content first: same bytes, keep theirs
            shutil.rmtree(staging, ignore_errors=True)
            if not target.exists():
                raise
        return digest

    def put_bytes(self, data: bytes, name: str) -> str:
        """Store ``data`` as a one-file artifact called ``name``."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_bytes(data)
            return self.put(path)

    def has(self, digest: str) -> bool:
        return (self.root / digest).is_dir()

    def path(self, digest: str) -> Path:
        """The artifact's folder, after checking that its files still hash to ``digest``."""
        folder = self.root / digest
        if len(digest) != 64 or not folder.is_dir():
            raise UnknownArtifact(f"no artifact {digest!r} in {self.root}")
        stamp = self._stamp(folder)
        if self._verified.get(digest) != stamp:
            actual = digest_tree(folder)  # a one-file folder hashes like the file itself
            if actual != digest:
                raise IntegrityError(f"artifact {digest[:12]}… was modified: its files hash to {actual[:12]}…")
            self._verified[digest] = stamp
        return folder

    def file(self, digest: str) -> Path:
        """The single file of a one-file artifact (a dataset, say), verified."""
        files = [p for p in self.path(digest).iterdir() if p.is_file()]
        if len(files) != 1:
            raise UnknownArtifact(f"artifact {digest[:12]}… is a folder, not one file")
        return files[0]

    @staticmethod
    def _stamp(folder: Path) -> tuple[int, ...]:
        # Re-hash only when a file changed size or mtime since the last check in this process.
        return tuple(x for p in sorted(folder.rglob("*")) if p.is_file() for x in (p.stat().st_size, p.stat().st_mtime_ns))
