"""The same gateway in front of a market hosted on Ray: the gateway agent lives in a shard actor
like the model servers, the ledger in the ledger actor (the embedded chain), and a caller with
only a key pays a call exactly as against the in-process market."""

from __future__ import annotations

import pytest

from agents.identity import Identity
from gateway import GatewayClient, create_app, embeddings, hosted
from gateway.server import serve_in_thread

pytestmark = [pytest.mark.ray, pytest.mark.chain, pytest.mark.slow]


def test_a_paid_call_through_a_gateway_whose_market_runs_on_ray(ray_cluster) -> None:
    # only the model owner, its servers and the data owner: this checks the gateway's path through Ray
    market = hosted("gateway-market", runtime="ray", overrides={f"agents.{g}.count": 0 for g in ("buyers", "gpu-providers", "hour-sellers", "hour-buyers")})
    running = serve_in_thread(create_app(market, faucet=10**18))
    try:
        assert market.kind == "ray" and type(market.ledger).__name__ == "RemoteLedger"
        with GatewayClient(running.url, Identity.from_seed("gateway-ray", "fay")) as client:
            assert client.chain()["ledger"] == "embedded"
            servers = client.services(kind="model-call", name="all-MiniLM-L6-v2")
            assert len(servers) == 2
            server = min(servers, key=lambda s: s["price"])
            assert client.faucet() == 10**18
            client.open_account()
            channel = client.open_channel(server["address"], deposit=3 * server["price"])
            before = market.ledger.balance_of(server["address"])
            job = client.call(server["address"], ["a call that crosses Ray", "and comes back paid"], channel, price=server["price"], wait=60)
            assert job["status"] in ("answered", "settled") and embeddings(job).shape == (2, 384), job
            done = client.job(job["job_id"], wait=30)
            assert done["status"] == "settled" and done["claim_tx"].startswith("0x")
            royalty = int(server["terms"]["royalty_per_call"])
            assert market.ledger.balance_of(server["address"]) - before == server["price"] - royalty
            assert client.channel(channel)["deposit"] == 2 * server["price"]
            assert market.ledger.is_conserved()
    finally:
        running.stop()
        market.close()
