"""Concurrent senders and a flaky network: nonces never collide, nothing is spent twice."""

from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import pytest

from agora.agents.identity import Identity
from agora.chain import EVMLedger, InsufficientFunds, Ledger


def test_one_sender_many_threads(ledger: Ledger, people: dict) -> None:
    buyer, to = people["buyer"], people["provider"].address
    ledger.open_account(buyer)
    ledger.mint(buyer.address, 50)

    def attempt(_: int) -> bool:
        try:
            ledger.transfer(buyer, to, 5)
            return True
        except InsufficientFunds:
            return False

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(attempt, range(14)))
    assert outcomes.count(True) == 10 and outcomes.count(False) == 4  # no double-spend
    assert ledger.balance_of(buyer.address) == 0 and ledger.balance_of(to) == 50
    assert ledger.is_conserved()


class FlakyProxy:
    """A loopback proxy that breaks some HTTP requests on purpose: every ``refuse_every``-th
    request is cut before it reaches the node; every ``lose_every``-th reaches the node, which
    acts on it, but its answer is lost. Either way the connection drops, as in a real outage."""

    def __init__(self, upstream: tuple[str, int], refuse_every: int = 4, lose_every: int = 5) -> None:
        self.upstream = upstream
        self.refuse_every, self.lose_every = refuse_every, lose_every
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.requests = 0
        self.faults = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._pipe, args=(client,), daemon=True).start()

    def _pipe(self, client: socket.socket) -> None:
        up = socket.create_connection(self.upstream)
        lost = threading.Event()

        def close() -> None:
            for sock in (client, up):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

        def answers() -> None:
            try:
                while data := up.recv(65536):
                    if lost.is_set():
                        break
                    client.sendall(data)
            except OSError:
                pass
            close()

        threading.Thread(target=answers, daemon=True).start()
        try:
            while data := client.recv(65536):
                if data.startswith(b"POST"):
                    self.requests += 1
                    if self.requests % self.refuse_every == 0:
                        self.faults += 1
                        break
                    if self.requests % self.lose_every == 0:
                        self.faults += 1
                        lost.set()
                up.sendall(data)
        except OSError:
            pass
        close()

    def close(self) -> None:
        self.server.close()


@pytest.mark.anvil
@pytest.mark.chaos
def test_lost_requests_and_answers_are_retried_without_paying_twice(anvil_url, tmp_path) -> None:
    u = urlparse(anvil_url)
    proxy = FlakyProxy((u.hostname, u.port))
    try:
        direct = EVMLedger.connect(anvil_url)
        book = direct.address_book().save(tmp_path / "book.json")
        flaky = EVMLedger.connect(f"http://127.0.0.1:{proxy.port}", address_book=str(book))
        recovered = []
        original = flaky._already_sent
        flaky._already_sent = lambda signed, exc: recovered.append(original(signed, exc)) or recovered[-1]  # type: ignore[method-assign]
        a, b = Identity.from_seed("flaky", "a"), Identity.from_seed("flaky", "b")
        direct.open_account(a)
        direct.mint(a.address, 1000)
        for _ in range(12):
            flaky.transfer(a, b.address, 7)
        assert proxy.faults >= 3  # the network really misbehaved
        assert any(recovered)  # a send whose answer was lost was found on the node, not resent
        assert direct.balance_of(b.address) == 84  # every transfer landed exactly once
        assert direct.balance_of(a.address) == 1000 - 84
    finally:
        proxy.close()


@pytest.mark.anvil
@pytest.mark.slow
def test_writes_wait_for_confirmations_on_a_mining_node() -> None:
    """A node that mines a block every second: with 3 confirmations a write returns only once
    two more blocks sit on top of the one that holds it."""
    from tests.conftest import start_anvil, stop

    proc, url = start_anvil()
    try:
        ledger = EVMLedger.connect(url)  # set-up mined at once
        a, b = Identity.from_seed("conf", "a"), Identity.from_seed("conf", "b")
        ledger.open_account(a)
        ledger.mint(a.address, 10)
        ledger.w3.provider.make_request("evm_setAutomine", [False])  # from here a block a second, as on a real chain
        ledger.w3.provider.make_request("evm_setIntervalMining", [1])
        ledger.confirmations = 3
        receipt = ledger.transfer(a, b.address, 4)
        assert ledger.w3.eth.block_number >= receipt.block + 2
        assert ledger.balance_of(b.address) == 4
    finally:
        stop(proc)


def test_the_embedded_chain_keeps_the_wall_clock_under_many_writes_a_second() -> None:
    """One block per transaction used to push py-evm's clock a second ahead per block (90 s
    ahead in a one-minute run), so deadlines the chain enforces expired early. Like anvil, the
    embedded chain now stamps blocks with the wall clock, several to a second."""
    import time

    ledger = EVMLedger.embedded()
    a, b = Identity.from_seed("clock", "a"), Identity.from_seed("clock", "b")
    ledger.open_account(a)
    ledger.mint(a.address, 10**6)
    start = time.time()
    for _ in range(40):
        ledger.transfer(a, b.address, 1)
    assert ledger.balance_of(b.address) == 40
    assert ledger.now() <= int(time.time()) + 1  # not 40 s ahead
    assert ledger.now() >= int(start)
    ahead = ledger.sync_time(int(time.time()) + 500)  # time travel still lands exactly
    assert ahead == ledger.now() >= int(start) + 500
    ledger.transfer(a, b.address, 1)
    assert ledger.now() == ahead  # and stays there, not before


@pytest.mark.anvil
@pytest.mark.chaos
def test_a_node_restarted_with_its_state_behind_a_faulty_network_loses_and_repeats_nothing() -> None:
    """The chaos harness's chain faults on their own: a ledger on anvil behind FaultyRPC (a
    third of the requests refused, answered never, or answered after the client gave up),
    and the node stopped and started again with its dumped state halfway: every transfer
    lands exactly once, and the ledger goes on over the restarted node."""
    from agora.chain.node import AnvilNode, FaultyRPC

    node = AnvilNode()
    proxy = FaultyRPC(node.url, seed=3, rate=0.0, stall_s=1.2)
    try:
        ledger = EVMLedger.connect(proxy.url, timeout=1.0)
        a, b = Identity.from_seed("restart", "a"), Identity.from_seed("restart", "b")
        ledger.open_account(a)
        ledger.mint(a.address, 1000)
        proxy.rate = 0.15
        for i in range(10):
            if i == 5:
                proxy.pause()
                down = node.restart()
                proxy.resume()
                assert down < 5
            ledger.transfer(a, b.address, 5)
        proxy.rate = 0.0
        assert sum(proxy.injected.values()) >= 3 and node.restarts == 1  # the network and the node really misbehaved
        assert ledger.balance_of(b.address) == 50 and ledger.balance_of(a.address) == 950
        assert ledger.total_supply() == 1000 and ledger.is_conserved()
    finally:
        proxy.close()
        node.stop()


@pytest.mark.ray
@pytest.mark.parametrize("backend", ["embedded", pytest.param("anvil", marks=pytest.mark.anvil)])  # the concurrent backends (a memory ledger's calls run alone)
def test_the_ledger_service_serves_many_senders_at_once_and_whole_ledger_reads_alone(ray_cluster, backend, request) -> None:
    """The ledger actor serves calls side by side (one at a time it was a Ray economy's
    bottleneck on anvil). Two threads per sender never draw the same nonce (the sender's lock in
    its own process); conservation read while transfers fly always sees one whole state."""
    import functools

    import ray

    from agora.agents.ray.ledger import LedgerService, RemoteLedger
    from agora.agents.ray.runtime import LEDGER_CONCURRENCY

    if backend == "embedded":
        factory = EVMLedger.embedded
    else:
        factory = functools.partial(EVMLedger.connect, request.getfixturevalue("anvil_url"))
    actor = ray.remote(LedgerService).options(num_cpus=0, max_concurrency=LEDGER_CONCURRENCY).remote(factory)
    ledger = RemoteLedger(actor)
    senders = [Identity.from_seed(f"service-{backend}", f"s{i}") for i in range(4)]
    sink = Identity.from_seed(f"service-{backend}", "sink").address
    for s in senders:
        ledger.open_account(s)
        ledger.mint(s.address, 100)
    stop_reading = threading.Event()
    seen: list[bool] = []

    def read() -> None:
        while not stop_reading.is_set():
            seen.append(ledger.is_conserved())

    def pay(s: Identity) -> int:
        return sum(ledger.transfer(s, sink, 3).block > 0 for _ in range(3))

    reader = threading.Thread(target=read)
    reader.start()
    with ThreadPoolExecutor(max_workers=8) as pool:
        done = sum(pool.map(pay, senders * 2))  # two threads per sender
    stop_reading.set()
    reader.join()
    assert done == 24
    assert ledger.balance_of(sink) == 72 and all(ledger.balance_of(s.address) == 82 for s in senders)
    assert seen and all(seen) and ledger.is_conserved()
    ray.kill(actor)
