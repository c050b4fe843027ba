"""Every example is run by a test, as a newcomer would run it: its own process, its own Ray.

The examples are independent programs, so they all start when the first of these tests does,
two at a time (most of an example's time is its own Ray starting and its agents waiting on one
another, not the two cores), and each test checks its own example's output when it ends."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# the longest first, so the pool ends together
ORDER = ["ray_cluster.py", "gpu_rental.py", "quickstart.py", "model_market.py", "data_market.py", "negotiation.py", "double_auction.py", "scripted_market.py"]


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory):
    """Every example's run (a CompletedProcess), by file name, two running at a time."""

    # made here, before the threads: two threads making the first temporary folder at once race
    # on pytest's base folder ("gpu_rental is not a normalized and relative path")
    homes = {name: tmp_path_factory.mktemp(name.removesuffix(".py")) for name in ORDER}

    def run(name: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "AGORA_HOME": str(homes[name]), "RAY_AUTH_MODE": "disabled"}
        if name == "model_market.py":  # uses the converted SmolLM2 cache under the default home (made on first use)
            env.pop("AGORA_HOME")
        return subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=600, env=env)

    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="example")
    runs: dict[str, Future] = {name: pool.submit(run, name) for name in ORDER}
    yield lambda name: runs[name].result()
    pool.shutdown(wait=True)


@pytest.mark.slow
@pytest.mark.ray
def test_quickstart_settles_a_trade(examples) -> None:
    out = examples("quickstart.py")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "deal settled" in out.stdout
    assert "(3, 384)" in out.stdout and "Ray GPU ['0']" in out.stdout
    assert "money conserved: True" in out.stdout


def test_double_auction_example_shows_the_textbook_ranking(examples) -> None:
    out = examples("double_auction.py")
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {line.split("│")[1].strip(): line for line in out.stdout.splitlines() if line.count("│") >= 4}
    efficiency = {k.split(" ")[0]: float(v.split("│")[2]) for k, v in rows.items()}
    assert efficiency["ZI-C"] >= 0.95 and efficiency["ZI-U"] < efficiency["ZI-C"] - 0.1
    assert "2 @ 120" in out.stdout and "best bid 130" in out.stdout


def test_negotiation_awards_the_trusted_provider_signed_end_to_end(examples) -> None:
    out = examples("negotiation.py")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "awarded to steady-gpu" in out.stdout and "'bargain-gpu': '0.003 AGR'" in out.stdout
    assert "deal settled" in out.stdout and "refused: none" in out.stdout
    assert "money conserved: True" in out.stdout


@pytest.mark.slow
@pytest.mark.ray
def test_ray_cluster_example_spreads_the_population_over_three_nodes(examples) -> None:
    out = examples("ray_cluster.py")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "nodes in the cluster: 3" in out.stdout
    distinct = int(out.stdout.split("shards on distinct nodes: ")[1].split()[0])
    assert distinct == 3  # shard i on node i mod 3
    assert "deal settled" in out.stdout and "(64, 384)" in out.stdout and "money conserved: True" in out.stdout


def test_data_market_example_sells_use_not_rows(examples) -> None:
    out = examples("data_market.py")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "researcher: deal settled, embeddings (4, 384)" in out.stdout
    assert "snoop: deal no_award: dataset 'clinic-notes' may not be read by model 'topics'" in out.stdout
    assert "raw download refused: compute-to-data only" in out.stdout
    assert "compute  by gpu    granted (4 rows read in place)" in out.stdout and "money conserved: True" in out.stdout


@pytest.mark.slow
def test_model_market_example_sells_generation_by_the_token(examples) -> None:
    """Uses the converted SmolLM2 cache (outside the repository; made on first use)."""
    out = examples("model_market.py")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "deal settled" in out.stdout and "Paris" in out.stdout
    assert "1 call + " in out.stdout and "tokens" in out.stdout and "money conserved: True" in out.stdout


@pytest.mark.slow
@pytest.mark.ray
def test_gpu_rental_example_matches_jobs_by_gpu_memory(examples) -> None:
    out = examples("gpu_rental.py")
    assert out.returncode == 0, out.stderr[-2000:]
    lines = {line.split("  ")[0]: line for line in out.stdout.splitlines() if "invited" in line}
    assert "invited [big-gpu] -> big-gpu: settled" in lines["needs 40 GB"]  # the small card lacks the memory
    assert "invited [big-gpu, small-gpu] -> small-gpu: settled" in lines["needs 8 GB"]  # both fit: the cheaper wins
    assert "-> big-gpu: settled" in lines["needs 2 GPUs"] and lines["needs 2 GPUs"].count("'") == 4  # two GPU ids
    assert "money conserved: True" in out.stdout


def test_scripted_market_example_runs_like_a_mesa_model(examples) -> None:
    out = examples("scripted_market.py")
    assert out.returncode == 0, out.stderr[-2000:]
    q = int(out.stdout.split("equilibrium: ")[1].split()[0])
    assert 30 <= q <= 60 and "money conserved: True" in out.stdout
    cheap = out.stdout.split("cheap providers sold ")[1]
    assert int(cheap.split()[0]) > 0
