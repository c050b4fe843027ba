"""One hosted market behind one real uvicorn server for the gateway tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


class Served:
    def __init__(self, market: Any, url: str) -> None:
        self.market, self.url = market, url


@pytest.fixture(scope="package")  # stopped after the gateway's tests: its market trades on the chain every second
def served() -> Iterator[Served]:
    from agora.gateway import create_app
    from agora.gateway.server import serve_in_thread
    from agora.simulations.hosted import hosted

    market = hosted("gateway-market")  # the whole trial market, its deals buyer included
    running = serve_in_thread(create_app(market, rate=10_000, burst=10_000))
    yield Served(market, running.url)
    running.stop()
    market.close()
