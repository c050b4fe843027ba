"""A gateway that joins a market already running on Ray: a model owner and its server are
deployed as a detached deployment (agents.deployment, what `agora deploy` runs), then
`agora gateway --join` — the real CLI, in a process of its own, connecting by the cluster's
address — puts a gateway agent into it as a guest and serves HTTP, and a caller with only a key
finds the server, pays a call by channel and reads the earnings. When the gateway stops, the
deployment runs on, and still drains and stops cleanly: the guest left nothing waiting for it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from agora.agents.identity import Identity
from agora.chain.node import free_port
from agora.gateway import GatewayClient, embeddings
from tests.cluster import ROOT

pytestmark = [pytest.mark.ray, pytest.mark.slow]

FEE, ROYALTY = 2 * 10**15, 10**15


def _population() -> dict:
    return {
        "name": "served",
        "seed": "served",
        "agents": [
            {
                "role": "model_owner",
                "name": "minilm-owner",
                "settings": {"model_path": "packaged", "model_name": "all-MiniLM-L6-v2", "price_per_call": ROYALTY},
            },
            {
                "role": "model_server",
                "name": "minilm-server",
                "settings": {"model_name": "all-MiniLM-L6-v2", "serves": "listed", "claim_every": 1, "price_per_call": FEE},
            },
        ],
    }


def _gateway(command: list[str], env: dict[str, str], tries: int = 3) -> tuple[subprocess.Popen, str]:
    """`agora gateway` serving on a free port: the port is picked before the process starts, so
    another process (a Ray worker) may take it meanwhile; then it is started again on another."""
    for _ in range(tries):
        url = f"http://127.0.0.1:{free_port()}"
        gateway = subprocess.Popen([*command, "--port", url.rsplit(":", 1)[1]], env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and gateway.poll() is None:
            try:
                if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                    return gateway, url
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        gateway.kill()
        err = gateway.communicate()[1]
        assert "address already in use" in err, err
    raise AssertionError(f"no free port in {tries} tries")


def test_a_gateway_joins_a_running_deployment_and_relays_a_paid_call(ray_cluster, tmp_path) -> None:
    import ray

    from agora.agents.ray import deployment

    population = tmp_path / "served.yaml"
    population.write_text(json.dumps(_population()))  # JSON is YAML
    name = f"served-{uuid.uuid4().hex[:6]}"
    deployment.deploy(population, name, tmp_path / "state", shards=2)
    address = ray.get_runtime_context().gcs_address
    command = [sys.executable, "-m", "agora.simulations.cli", "gateway", "--join", name, "--address", address, "--faucet", str(10**18)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AGORA_TESTING_WITHOUT_RAY_AUTH": "1", "RAY_AUTH_MODE": "disabled"}  # this test Ray runs without tokens
    gateway, url = _gateway(command, env)
    try:
        with GatewayClient(url, Identity.from_seed("joined", "caller")) as client:
            assert client.chain()["ledger"] == "memory"  # the deployment's ledger actor
            (server,) = client.services(kind="model-call", name="all-MiniLM-L6-v2")
            assert server["price"] == FEE + ROYALTY and client.profile(server["address"])["name"] == "minilm-server"
            owner = server["terms"]["owner"]
            client.faucet()
            client.open_account()
            channel = client.open_channel(server["address"], deposit=2 * server["price"])
            before = {a: client.balance(a) for a in (server["address"], owner)}
            job = client.call(server["address"], ["a call into a deployed market"], channel, price=server["price"], wait=60)
            assert job["status"] in ("answered", "settled") and embeddings(job).shape == (1, 384), job
            done = client.job(job["job_id"], wait=30)
            assert done["status"] == "settled" and done["claim_tx"], done
            assert client.balance(server["address"]) - before[server["address"]] == FEE  # its fee; the royalty went on
            assert client.balance(owner) - before[owner] == ROYALTY
            assert int(client.channel(channel)["deposit"]) == server["price"]
    finally:
        gateway.send_signal(signal.SIGINT)
        gateway.wait(timeout=60)
        gateway.stderr.close()
    rows = deployment.status(name)
    assert [r["name"] for r in rows] == ["minilm-owner", "minilm-server"]  # the market ran on without its guest
    assert deployment.stop(name, drain_timeout=30)["agents"] == 2  # nothing was left waiting for the departed gateway
