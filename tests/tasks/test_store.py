from __future__ import annotations

from pathlib import Path

import pytest

from agora.tasks import ContentStore, IntegrityError, UnknownArtifact, digest_tree


def test_put_names_content_by_sha256(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "s")
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "w.bin").write_bytes(b"weights")
    (folder / "cfg.json").write_text("{}")
    digest = store.put(folder)
    assert digest == digest_tree(folder) and len(digest) == 64
    assert store.put(folder) == digest  # idempotent
    assert (store.path(digest) / "w.bin").read_bytes() == b"weights"
    (folder / "w.bin").write_bytes(b"other")
    assert store.put(folder) != digest  # different content, different name


def test_one_file_artifact(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    digest = store.put_bytes(b'{"text": "a"}\n', "data.jsonl")
    assert store.file(digest).read_bytes() == b'{"text": "a"}\n'


def test_tampered_artifact_is_refused(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    digest = store.put_bytes(b"clean", "model.bin")
    store.path(digest)
    (store.root / digest / "model.bin").write_bytes(b"evil!")
    with pytest.raises(IntegrityError, match="modified"):
        store.path(digest)


def test_unknown_hash(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    with pytest.raises(UnknownArtifact):
        store.path("0" * 64)
    with pytest.raises(UnknownArtifact):
        store.path("not-a-hash")
