"""Issue 18, hole 3, at the gateway: a node that takes a transaction and never mines it (as anvil
does with one whose nonce is ahead of the account's) made the gateway wait 120 s for its receipt
while holding the market's lock, so every other request, even GET /v1/chain, waited with it, and
then answered 500. Now the wait is bounded by the ledger's ``write_timeout`` (2 s here), it ends
in a 503 that names the node, with Retry-After, and reads issued meanwhile are answered first.

The node here is a real anvil behind a small proxy that, once told to, plays a node that queues
every raw transaction and never mines it: it answers eth_sendRawTransaction with the hash (not
passing it on) and every receipt request for it with null. Reads pass through untouched: that is
the node this models (up, answering, not mining), and reads that need the node are what callers
issue. The test checks order, not durations: the reads, issued once the node has taken the write,
come back before the write's answer."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from eth_utils import keccak

from agora.agents.identity import Identity
from agora.gateway import GatewayClient, GatewayHTTPError, create_app
from agora.gateway.server import serve_in_thread

pytestmark = [pytest.mark.anvil, pytest.mark.slow]


class NeverMines:
    """A JSON-RPC proxy to ``upstream``; after ``hold()``, raw transactions are taken and never mined."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.holding = False
        self.held: set[str] = set()  # hashes taken and never passed on
        self.took = threading.Event()  # set when a raw transaction was taken while holding
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                reply = proxy._answer(json.loads(body)) if body.startswith(b"{") else None
                if reply is None:
                    request = urllib.request.Request(proxy.upstream, body, {"Content-Type": "application/json"})
                    with urllib.request.urlopen(request, timeout=60) as answer:
                        data = answer.read()
                else:
                    data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True, name="never-mines").start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _answer(self, call: dict[str, Any]) -> dict[str, Any] | None:
        """The proxy's own answer to a JSON-RPC call, or None to pass it on."""
        method, params = call.get("method"), call.get("params") or []
        if self.holding and method == "eth_sendRawTransaction":
            tx_hash = "0x" + keccak(hexstr=params[0]).hex()
            self.held.add(tx_hash)
            self.took.set()
            return {"jsonrpc": "2.0", "id": call.get("id"), "result": tx_hash}
        if method in ("eth_getTransactionReceipt", "eth_getTransactionByHash") and params and params[0] in self.held:
            return {"jsonrpc": "2.0", "id": call.get("id"), "result": None}
        return None

    def hold(self) -> None:
        self.holding = True

    def mine_again(self) -> None:
        self.holding = False
        self.held.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stalled_gateway(anvil_url: str) -> Iterator[tuple[NeverMines, Any, str]]:
    from agora.simulations.hosted import HostedMarket
    from agora.simulations.scenario import Scenario

    proxy = NeverMines(anvil_url)
    scenario = Scenario.model_validate(
        {"version": 1, "name": "stall", "seed": 19, "duration": 3600, "step": 5, "ledger": proxy.url, "agents": [{"role": "arbiter", "name": "arbiter"}]}
    )
    market = HostedMarket(scenario)
    running = serve_in_thread(create_app(market, rate=10_000, burst=10_000, write_timeout=2.0))
    try:
        yield proxy, market, running.url
    finally:
        proxy.mine_again()
        running.stop()
        market.close()
        proxy.close()


def test_a_write_the_node_never_mines_ends_in_503_and_reads_meanwhile_are_answered_first(stalled_gateway) -> None:
    proxy, market, url = stalled_gateway
    me, to = Identity.from_seed("stall", "caller"), Identity.from_seed("stall", "payee")
    market.ledger.mint(me.address, 1000)
    with GatewayClient(url, me) as client:
        client.open_account()
        answer = client.request("POST", "/v1/tx", body={"op": "transfer", "args": {"to": to.address, "amount": 7}}, signed=True)
        signed = {"signed": "0x" + me.sign_transaction(answer["tx"]).hex()}
        proxy.hold()
        done: list[tuple[str, Any]] = []
        lock = threading.Lock()

        def run(name: str, fn: Any) -> None:
            try:
                out = fn()
            except GatewayHTTPError as exc:
                out = exc
            with lock:
                done.append((name, out))

        write = threading.Thread(target=run, args=("write", lambda: client.request("POST", f"/v1/tx/{answer['prepared_id']}", body=signed, signed=True)))
        write.start()
        assert proxy.took.wait(timeout=60)  # the node has the transaction: the gateway now waits for its receipt
        reads = {
            "chain": lambda: httpx.get(f"{url}/v1/chain", timeout=90).json(),
            "account": lambda: httpx.get(f"{url}/v1/accounts/{me.address}", timeout=90).json(),
            "health": lambda: httpx.get(f"{url}/v1/health", timeout=90).json(),
            "services": lambda: httpx.get(f"{url}/v1/services", timeout=90).json(),
        }
        threads = [threading.Thread(target=run, args=item) for item in reads.items()]
        for t in threads:
            t.start()
        for t in [*threads, write]:
            t.join(timeout=300)
        order = [name for name, _ in done]
        assert order[-1] == "write" and sorted(order[:-1]) == sorted(reads), order  # every read came back before the write did
        outcome = dict(done)
        assert outcome["account"]["balance"] == 1000 and outcome["chain"]["chain_id"] and outcome["health"]["ok"], outcome
        err = outcome["write"]
        assert isinstance(err, GatewayHTTPError) and err.status == 503 and err.retry_after, err
        assert "node" in err.detail and proxy.url.rsplit(":", 1)[1] in err.detail and "2 s" in err.detail, err.detail
        assert market.ledger.balance_of(to.address) == 0

        proxy.mine_again()  # the node mines again: the same bytes, posted again, land once
        receipt = client.request("POST", f"/v1/tx/{answer['prepared_id']}", body=signed, signed=True)["receipt"]
        assert receipt["op"] == "transfer" and market.ledger.balance_of(to.address) == 7
