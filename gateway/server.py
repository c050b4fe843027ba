"""Run a gateway app on uvicorn in a background thread (scripts, tests and benchmarks)."""

from __future__ import annotations

import threading
import time
from typing import Any


class Running:
    """A uvicorn server started by :func:`serve_in_thread`; ``stop()`` shuts it down."""

    def __init__(self, server: Any, thread: threading.Thread, url: str) -> None:
        self.server, self.thread, self.url = server, thread, url

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=timeout)

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop()


def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int | None = None, start_timeout: float = 20.0) -> Running:
    """Serve ``app`` on ``host:port`` (a free port when None) and return once it listens."""
    import uvicorn

    from agora.chain.node import free_port

    port = free_port() if port is None else port
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the gateway server on {host}:{port} did not start")
        time.sleep(0.02)
    return Running(server, thread, f"http://{host}:{port}")
