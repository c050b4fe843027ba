"""`agora deploy / status / stop` against a 3-node Ray cluster with token authentication on.

The cluster runs in a process of its own (three raylets on this machine, Ray's own
``cluster_utils.Cluster``), every command is the real CLI in a subprocess, and the deployed
agents keep running after `deploy` exits; `stop` drains and snapshots them, and a second
`deploy` resumes them where they stopped."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents import Agent, Context, Identity, Message, on_interval, on_message

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = """
import sys
from ray.cluster_utils import Cluster
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
for _ in range(2):
    cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
print(cluster.address, flush=True)
sys.stdin.read()  # runs until the test closes stdin
cluster.shutdown()
"""


class Beat(Message):
    k: int


class Beacon(Agent):
    """Sends its peer a numbered beat every 50 ms, forever; counts what it got."""

    def __init__(self, name: str, identity: Identity, peer: str) -> None:
        super().__init__(name, identity)
        self.peer, self.sent, self.got = peer, 0, 0

    @on_interval(0.05)
    def beat(self, ctx: Context) -> None:
        ctx.send(self.peer, Beat(k=self.sent))
        self.sent += 1

    @on_message(Beat)
    def heard(self, ctx: Context, sender: str, msg: Beat) -> None:
        self.got += 1


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> dict[str, str]:
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16), "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("AGORA_TESTING_WITHOUT_RAY_AUTH", None)
    proc = subprocess.Popen([sys.executable, "-c", CLUSTER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
    address = proc.stdout.readline().strip()
    assert address, "the cluster did not start"
    yield {**env, "RAY_ADDRESS": address}
    proc.stdin.close()
    proc.wait(timeout=120)
    proc.stdout.close()


def agora(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simulations.cli", *args], env=env, capture_output=True, text=True, timeout=240, cwd=ROOT)


def status(env: dict[str, str], name: str) -> list[dict]:
    done = agora(env, "status", "--name", name, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_deploy_status_stop_and_resume_on_a_three_node_cluster(cluster, tmp_path) -> None:
    seed, names = "deploy", [f"beacon-{i}" for i in range(6)]
    peers = [Identity.from_seed(seed, names[(i + 1) % 6]).address for i in range(6)]
    groups = [
        {"role": "tests.agents.test_deployment:Beacon", "name": n, "settings": {"peer": p}, "funds": 1000 + i}
        for i, (n, p) in enumerate(zip(names, peers))
    ]
    population = tmp_path / "beacons.yaml"
    population.write_text(json.dumps({"name": "beacons", "seed": seed, "agents": groups}))  # JSON is YAML
    state = tmp_path / "state"
    common = ["--name", "beacons", "--state", str(state), "--shards", "3"]

    refused = agora({**cluster, "RAY_AUTH_MODE": "disabled"}, "deploy", str(population), *common)
    assert refused.returncode == 2 and "token authentication is off" in refused.stderr

    done = agora(cluster, "deploy", str(population), *common)
    assert done.returncode == 0, done.stderr
    assert "6 agents in 3 shards started" in done.stdout
    assert agora(cluster, "deploy", str(population), *common).returncode == 1  # already running

    first = status(cluster, "beacons")  # the deploy command has exited; the agents run on
    assert [r["name"] for r in first] == names
    assert [r["balance"] for r in first] == [1000 + i for i in range(6)]
    assert len({r["node"] for r in first}) == 3  # three shards on three nodes
    time.sleep(1.0)
    later = status(cluster, "beacons")
    assert all(b["handled"] > a["handled"] for a, b in zip(first, later))

    stopped = agora(cluster, "stop", "--name", "beacons")
    assert stopped.returncode == 0, stopped.stderr
    assert "6 agents snapshotted" in stopped.stdout
    gone = agora(cluster, "status", "--name", "beacons")
    assert gone.returncode == 1 and "no deployment named 'beacons'" in gone.stderr
    at_stop = {r["name"]: r["handled"] for r in later}

    again = agora(cluster, "deploy", str(population), *common)
    assert again.returncode == 0, again.stderr
    assert "resumed from its last stop" in again.stdout
    resumed = status(cluster, "beacons")
    assert [r["balance"] for r in resumed] == [1000 + i for i in range(6)]  # the memory ledger came back
    assert all(r["handled"] >= at_stop[r["name"]] for r in resumed)  # counted on from the snapshot, not from zero
    time.sleep(1.0)
    assert all(b["handled"] > a["handled"] for a, b in zip(resumed, status(cluster, "beacons")))  # timers re-armed
    assert agora(cluster, "stop", "--name", "beacons").returncode == 0
