"""`agora deploy / status / stop` against a 3-node Ray cluster with token authentication on.

The cluster runs in a process of its own (three raylets on this machine, Ray's own
``cluster_utils.Cluster``), every command is the real CLI in a subprocess, and the deployed
agents keep running after `deploy` exits; `stop` drains and snapshots them, and a second
`deploy` resumes them where they stopped."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from agora.agents import Agent, Context, Identity, Message, on_interval, on_message
from tests.cluster import agora, ray_cluster_process

pytestmark = pytest.mark.slow


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

    def beats_heard(self) -> int:
        return self.got


@pytest.fixture(scope="module")
def cluster() -> Iterator[dict[str, Any]]:
    with ray_cluster_process(workers=2) as found:
        yield found


def status(env: dict[str, str], name: str) -> list[dict]:
    done = agora(env, "status", "--name", name, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _poll(fn, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = fn()
        if found:
            return found
        time.sleep(1.0)
    return None


def _healed(env: dict[str, str], dead_node: str, before: list[dict]) -> list[dict] | None:
    """The status once every agent is on a live node and handling beats again."""
    done = agora(env, "status", "--name", "beacons", "--json")
    if done.returncode != 0:
        return None
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    moved = all(r["node"] != dead_node for r in rows)
    going = all(r["handled"] > b["handled"] for r, b in zip(rows, before, strict=False))
    return rows if moved and going else None


def test_deploy_status_stop_and_resume_on_a_three_node_cluster(cluster, tmp_path) -> None:
    env = cluster["env"]
    seed, names = "deploy", [f"beacon-{i}" for i in range(6)]
    peers = [Identity.from_seed(seed, names[(i + 1) % 6]).address for i in range(6)]
    groups = [
        {"role": "tests.agents.test_deployment:Beacon", "name": n, "settings": {"peer": p}, "funds": 1000 + i}
        for i, (n, p) in enumerate(zip(names, peers, strict=False))
    ]
    population = tmp_path / "beacons.yaml"
    population.write_text(json.dumps({"name": "beacons", "seed": seed, "agents": groups}))  # JSON is YAML
    state = tmp_path / "state"
    common = ["--name", "beacons", "--state", str(state), "--shards", "3"]

    refused = agora({**env, "RAY_AUTH_MODE": "disabled"}, "deploy", str(population), *common)
    assert refused.returncode == 2 and "token authentication is off" in refused.stderr

    done = agora(env, "deploy", str(population), *common)
    assert done.returncode == 0, done.stderr
    assert "6 agents in 3 shards started" in done.stdout
    assert agora(env, "deploy", str(population), *common).returncode == 1  # already running

    first = status(env, "beacons")  # the deploy command has exited; the agents run on
    assert [r["name"] for r in first] == names
    assert [r["balance"] for r in first] == [1000 + i for i in range(6)]
    assert len({r["node"] for r in first}) == 3  # three shards on three nodes
    time.sleep(1.0)
    later = status(env, "beacons")
    assert all(b["handled"] > a["handled"] for a, b in zip(first, later, strict=False))

    # a worker node dies: its shard is respawned on a live node from its journal
    doomed = next(r["node"] for r in later if r["node"] != cluster["head"])
    cluster["remove"](doomed)
    healed = _poll(lambda: _healed(env, doomed, later), timeout=90)
    assert healed, "the shard on the removed node did not come back"
    assert all(h["handled"] >= b["handled"] for h, b in zip(healed, later, strict=False))  # its agents' state came back too
    later = healed

    stopped = agora(env, "stop", "--name", "beacons")
    assert stopped.returncode == 0, stopped.stderr
    assert "6 agents snapshotted" in stopped.stdout
    kept = [state, state / "snapshots", state / "registry.pickle", state / "ledger.pickle", state / "deployment.json", *(state / "snapshots").iterdir()]
    assert {oct(p.stat().st_mode & 0o777) for p in kept[:2]} == {"0o700"} and {oct(p.stat().st_mode & 0o777) for p in kept[2:]} == {"0o600"}  # owner-only
    gone = agora(env, "status", "--name", "beacons")
    assert gone.returncode == 1 and "no deployment named 'beacons'" in gone.stderr
    at_stop = {r["name"]: r["handled"] for r in later}

    again = agora(env, "deploy", str(population), *common)
    assert again.returncode == 0, again.stderr
    assert "resumed from its last stop" in again.stdout
    resumed = status(env, "beacons")
    assert [r["balance"] for r in resumed] == [1000 + i for i in range(6)]  # the memory ledger came back
    assert all(r["handled"] >= at_stop[r["name"]] for r in resumed)  # counted on from the snapshot, not from zero
    time.sleep(1.0)
    assert all(b["handled"] > a["handled"] for a, b in zip(resumed, status(env, "beacons"), strict=False))  # timers re-armed
    assert agora(env, "stop", "--name", "beacons").returncode == 0
