"""Issue 18: the state folders of the durable runtime and of deployments are the operator's alone.

They hold pickles (snapshots, the shard journals and checkpoints, a deployment's registry and
ledger), and loading a pickle runs whatever code it names: whoever can write there can run code
as the operator. So they are written owner-only (folders 0o700, files 0o600, whatever the umask)
and refused at load when group- or world-writable, or owned by another user.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agora.agents.journal import Journal
from agora.agents.snapshot import FolderStore


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most permissive umask: what is written must not depend on it."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _refused(load: Callable[[], object], *needles: str) -> Exception:
    """``load()`` must fail with the agents package's unsafe-state error, saying each needle."""
    try:
        load()
    except Exception as exc:  # noqa: BLE001 - checked just below
        from agora.agents.snapshot import UnsafeStateFolder

        assert isinstance(exc, UnsafeStateFolder), f"{type(exc).__name__}: {exc}"
        assert isinstance(exc, PermissionError)
        for needle in needles:
            assert needle in str(exc), str(exc)
        return exc
    pytest.fail("loaded from a state folder others may write, without a word")


def _saved(root: Path) -> Path:
    FolderStore(root).put("agent-0xabc", b"pickled state")
    return root


@pytest.mark.parametrize(
    ("mode", "kind"), [(0o777, "group- and world-writable"), (0o770, "group-writable"), (0o702, "world-writable")], ids=["0o777", "0o770", "0o702"]
)
def test_a_snapshot_folder_others_may_write_is_refused_at_load(tmp_path: Path, mode: int, kind: str) -> None:
    root = _saved(tmp_path / "snapshots")
    os.chmod(root, mode)
    _refused(lambda: FolderStore(root).get("agent-0xabc"), f"state folder {root} is {kind}", f"(mode 0o{mode:o})", f"chmod 700 {root}")


def test_a_snapshot_file_others_may_write_is_refused_at_load(tmp_path: Path) -> None:
    root = _saved(tmp_path / "snapshots")
    os.chmod(root / "agent-0xabc", 0o666)
    _refused(lambda: FolderStore(root).get("agent-0xabc"), f"state file {root / 'agent-0xabc'} is group- and world-writable", "chmod 600")


def test_a_snapshot_file_that_is_a_link_is_refused_at_load(tmp_path: Path) -> None:
    root = _saved(tmp_path / "snapshots")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"someone else's pickle")
    (root / "agent-0xdef").symlink_to(elsewhere)
    _refused(lambda: FolderStore(root).get("agent-0xdef"), f"state file {root / 'agent-0xdef'} is a symbolic link")


@pytest.mark.skipif(os.geteuid() != 0, reason="making a folder another user's needs root")
def test_a_state_folder_owned_by_another_user_is_refused_at_load(tmp_path: Path) -> None:
    root = _saved(tmp_path / "snapshots")
    os.chown(root, 4242, -1)
    _refused(lambda: FolderStore(root).get("agent-0xabc"), f"state folder {root} is owned by uid 4242", f"not this user (uid {os.geteuid()})")
    os.chown(root, os.geteuid(), -1)
    os.chown(root / "agent-0xabc", 4242, -1)
    _refused(lambda: FolderStore(root).get("agent-0xabc"), "is owned by uid 4242")


def test_a_journal_folder_or_file_others_may_write_is_refused_at_recovery(tmp_path: Path) -> None:
    root = tmp_path / "shard-0"
    journal = Journal(root)
    journal.recover()
    journal.append({"agents": {"0xabc": b"state"}})
    journal.close()
    os.chmod(root / "journal-0", 0o646)
    _refused(lambda: Journal(root).recover(), f"state file {root / 'journal-0'} is world-writable")
    os.chmod(root / "journal-0", 0o600)
    os.chmod(root, 0o775)
    _refused(lambda: Journal(root).recover(), f"state folder {root} is group-writable (mode 0o775)")


def test_a_fresh_save_is_owner_only_whatever_the_umask(tmp_path: Path, open_umask: None) -> None:
    root = _saved(tmp_path / "state" / "snapshots")  # both folders made here
    assert (_mode(tmp_path / "state"), _mode(root), _mode(root / "agent-0xabc")) == (0o700, 0o700, 0o600)
    shard = tmp_path / "journal" / "shard-0"
    journal = Journal(shard, min_bytes=1)
    journal.recover()
    journal.append({"agents": {"0xabc": b"state"}})
    assert (_mode(tmp_path / "journal"), _mode(shard), _mode(shard / "journal-0")) == (0o700, 0o700, 0o600)
    journal.compact({"agents": {"0xabc": b"state"}})  # a checkpoint and the next generation's journal
    assert (_mode(shard / "checkpoint"), _mode(shard / "journal-1")) == (0o600, 0o600)
    journal.close()
    again = Journal(shard)
    assert again.recover().agents == {"0xabc": b"state"}  # and it loads back
    again.close()


def _population(tmp_path: Path) -> Path:
    population = tmp_path / "population.yaml"
    population.write_text(json.dumps({"name": "p", "seed": "s", "agents": []}))
    return population


def test_deploy_refuses_a_state_folder_others_may_write_before_it_starts_anything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agora.agents.ray import deployment

    monkeypatch.setattr(deployment, "_actor", lambda name: pytest.fail("deploy reached Ray before checking its state folder"))
    state = tmp_path / "state"
    state.mkdir()
    os.chmod(state, 0o777)
    exc = _refused(lambda: deployment.deploy(_population(tmp_path), "p", state), f"state folder {state} is group- and world-writable")
    assert isinstance(exc, deployment.DeploymentError)  # what `agora deploy` reports (exit 1)
    os.chmod(state, 0o700)
    _saved(state / "snapshots")  # a stopped deployment: deploy would resume, loading the pickles below
    (state / "registry.pickle").write_bytes(b"not checked yet")
    os.chmod(state / "registry.pickle", 0o664)
    _refused(lambda: deployment.deploy(_population(tmp_path), "p", state), f"state file {state / 'registry.pickle'} is group-writable")


def test_a_deployments_kept_files_are_written_owner_only(tmp_path: Path, open_umask: None) -> None:
    """What `agora stop` writes beside the snapshots (the registry, the memory ledger, the
    manifest) goes through one owner-only, atomic writer."""
    from agora.agents.snapshot import write_private

    state = tmp_path / "state"
    write_private(state / "registry.pickle", b"registry")
    assert (_mode(state), _mode(state / "registry.pickle")) == (0o700, 0o600)
    (state / "ledger.pickle").write_bytes(b"old")
    os.chmod(state / "ledger.pickle", 0o666)
    write_private(state / "ledger.pickle", b"ledger")  # replaced, not written through its old mode
    assert _mode(state / "ledger.pickle") == 0o600 and (state / "ledger.pickle").read_bytes() == b"ledger"
