"""A JSON-RPC node you can restart, and a faulty network in front of it (for chaos runs).

:class:`AnvilNode` runs the anvil binary that ``npm install`` puts under node_modules (the one
the test suite uses) on a loopback port and restarts it with its whole state: blocks,
receipts, balances, nonces and contract storage are dumped over RPC (``anvil_dumpState``)
before the process is stopped and loaded into the new one (``anvil_loadState``), as an
operator restarting a node from its database would see it.

:class:`FaultyRPC` is an HTTP proxy between a ledger and a node that, from a seed, refuses
some requests (the connection drops before the node sees them), loses some answers (the node
did the work, the client never hears) and stalls others past the client's timeout. While
``pause``\\ d it refuses everything, so a node can be restarted behind it without a write slipping
in between the dump and the stop. The ledger's retries (``EVMLedger.connect``) must absorb all
of it without sending a transaction twice.
"""

from __future__ import annotations

import json
import random
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from agora.chain.errors import ChainError

ROOT = Path(__file__).resolve().parent.parent


class NodeError(ChainError):
    """A node that cannot be found, started or restarted."""


def anvil_binary() -> str:
    """The native anvil ``npm install`` put under node_modules (or one on PATH)."""
    native = sorted(ROOT.glob("node_modules/@foundry-rs/anvil-*/bin/anvil"))
    if native:
        return str(native[0])
    found = shutil.which("anvil")
    if found is None:
        raise NodeError("anvil is not installed: run `npm install` in the repository (make test does)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def rpc(url: str, method: str, params: list[Any], timeout: float = 30.0) -> Any:
    """One JSON-RPC call, without web3 (the node's own admin methods)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        reply = json.loads(answer.read())
    if "error" in reply:
        raise NodeError(f"{method}: {reply['error']}")
    return reply["result"]


class AnvilNode:
    """An anvil process on 127.0.0.1 (hardfork pinned to the embedded chain's)."""

    def __init__(self, *extra: str, port: int | None = None) -> None:
        self.extra = extra
        self.binary = anvil_binary()
        self.restarts = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = port or 0
        self._start(port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _start(self, port: int | None) -> None:
        for _attempt in range(5):  # a free port may be taken between picking and binding
            self.port = port or free_port()
            self.proc = subprocess.Popen(
                [self.binary, "--host", "127.0.0.1", "--port", str(self.port), "--hardfork", "prague", "--silent", *self.extra],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and self.proc.poll() is None and not _listening(self.port):
                time.sleep(0.02)
            if self.proc.poll() is None:
                return
        raise NodeError(f"anvil would not start (exit code {self.proc.returncode if self.proc else None})")

    def restart(self) -> float:
        """Stop the node and start it again on the same port with all its state; returns the
        seconds it was down."""
        deadline = time.monotonic() + 10  # a transaction taken but not yet mined would not be in the dump
        while time.monotonic() < deadline and int(rpc(self.url, "txpool_status", [])["pending"], 16):
            time.sleep(0.02)
        state = rpc(self.url, "anvil_dumpState", [])
        began = time.monotonic()
        self.stop()
        self._start(self.port)
        rpc(self.url, "anvil_loadState", [state])
        self.restarts += 1
        return time.monotonic() - began

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


class FaultyRPC:
    """An HTTP proxy to ``upstream`` that refuses, loses or stalls a seeded share of requests."""

    def __init__(self, upstream: str, seed: int | str = 0, rate: float = 0.0, stall_s: float = 3.0) -> None:
        self.upstream = upstream
        self.rate, self.stall_s = rate, stall_s
        self._rng = random.Random(f"faulty-rpc:{seed}")
        self._lock = threading.Lock()
        self._open = threading.Event()
        self._open.set()
        self.injected: Counter[str] = Counter()
        self.requests = 0
        self._inside = 0  # requests forwarded whose answer has not come back from the node
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fault = proxy._decide()
                if fault == "refused":  # dropped before the node saw it
                    self.close_connection = True
                    return
                try:
                    request = urllib.request.Request(proxy.upstream, body, {"Content-Type": "application/json"})
                    with urllib.request.urlopen(request, timeout=60) as answer:
                        reply = answer.read()
                except OSError:  # the node is down (a restart): the client sees a dropped connection
                    self.close_connection = True
                    return
                finally:
                    with proxy._lock:
                        proxy._inside -= 1
                if fault == "lost":  # the node did it; the answer never arrives
                    self.close_connection = True
                    return
                if fault == "stalled":  # arrives after the client gave up
                    time.sleep(proxy.stall_s)
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:
                    self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True, name="faulty-rpc").start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _decide(self) -> str | None:
        with self._lock:
            self.requests += 1
            if not self._open.is_set():
                self.injected["refused while paused"] += 1
                return "refused"
            kind = None
            if self.rate > 0:
                draw, pick = self._rng.random(), self._rng.choice(("refused", "lost", "stalled"))
                if draw < self.rate:
                    self.injected[pick] += 1
                    kind = pick
            if kind != "refused":
                self._inside += 1  # on its way to the node
            return kind

    def pause(self, timeout: float = 60.0) -> None:
        """Refuse every request until ``resume``; returns once those already on their way to
        the node have its answer (so a state dump taken now holds every write it accepted)."""
        self._open.clear()
        deadline = time.monotonic() + timeout
        while self._inside and time.monotonic() < deadline:
            time.sleep(0.01)

    def resume(self) -> None:
        self._open.set()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
