"""A real Ray cluster in a process of its own, with token authentication on, for the tests that
drive the CLI the way an operator does (`agora deploy`, `agora gateway --join`).

The cluster is Ray's own ``cluster_utils.Cluster`` (a head and worker raylets on this machine);
the test talks to it only through subprocesses given ``env``, so it never joins it itself."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = """
import sys
from ray.cluster_utils import Cluster
head_cpus, head_gpus, workers = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
# a node that stops answering is declared dead after ~5 s instead of Ray's default ~30 s
config = {"health_check_period_ms": 1000, "health_check_failure_threshold": 5, "health_check_timeout_ms": 1000}
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": head_cpus, "num_gpus": head_gpus, "include_dashboard": False, "_system_config": config})
for _ in range(workers):
    cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
print(cluster.address, cluster.head_node.node_id, flush=True)
for line in sys.stdin:  # runs until the test closes stdin; "remove NODE_ID" takes a node down
    command, _, node_id = line.strip().partition(" ")
    for node in list(cluster.worker_nodes):
        if command == "remove" and node.node_id == node_id:
            cluster.remove_node(node)
    print("done", flush=True)
cluster.shutdown()
"""


@contextmanager
def ray_cluster_process(workers: int = 2, head_cpus: int = 1, head_gpus: int = 0) -> Iterator[dict[str, Any]]:
    """Yields ``env`` (for subprocesses: RAY_ADDRESS and the token), the head's node id, and
    ``remove(node_id)`` to take a worker node down."""
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16), "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("AGORA_TESTING_WITHOUT_RAY_AUTH", None)
    args = [sys.executable, "-c", SCRIPT, str(head_cpus), str(head_gpus), str(workers)]
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
    address, _, head = proc.stdout.readline().strip().partition(" ")
    assert address, "the cluster did not start"

    def remove(node_id: str) -> None:
        proc.stdin.write(f"remove {node_id}\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "done"

    try:
        yield {"env": {**env, "RAY_ADDRESS": address}, "head": head, "remove": remove}
    finally:
        proc.stdin.close()
        proc.wait(timeout=120)
        proc.stdout.close()


def agora(env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """One `agora` command, as an operator types it, against the cluster in ``env``."""
    return subprocess.run([sys.executable, "-m", "agora.simulations.cli", *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
