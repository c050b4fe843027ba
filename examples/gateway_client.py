"""A paid model call over HTTP from Python: once by payment channel, once by escrow.

``GatewayClient`` signs every request, transaction and voucher locally: the key never leaves
this process. Start a gateway first:  agora gateway --faucet 1000000000000000000
Run:  python examples/gateway_client.py   (GW=http://HOST:PORT for another gateway)
"""

import os

from agora.agents import Identity
from agora.gateway import GatewayClient, embeddings

GW = os.environ.get("GW", "http://127.0.0.1:8000")

with GatewayClient(GW, Identity.from_seed("walkthrough", "bob")) as gw:
    server = min(gw.services(kind="model-call", name="all-MiniLM-L6-v2"), key=lambda s: s["price"])
    gw.faucet()
    gw.open_account()  # noqa: E702 - trial tokens, then one transaction opens the account
    channel = gw.open_channel(server["address"], deposit=10 * server["price"])
    job = gw.call(server["address"], ["Agents buy GPU time."], channel)  # a voucher per call
    print("channel call:", embeddings(job).shape, "claim", gw.job(job["job_id"], wait=20)["claim_tx"])
    quote = gw.open_escrow(server["address"], seconds=600)  # one escrow, one call
    job = gw.call_escrowed(server["address"], ["Check me first."], quote["terms"]["escrow_id"])
    checked = embeddings(job).shape == (1, 384)
    gw.release(job) if checked else gw.dispute(job)  # pay the bill, or ask the arbiter
    print("escrow call:", embeddings(job).shape, "released" if checked else "disputed")
