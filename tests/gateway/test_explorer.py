"""The market explorer in a real browser (Debian's headless Chromium, over DevTools): what a person
would see — the services listed with prices and reputation, the price chart drawing trades as
they stream in, and a job submitted through the gateway walking to "settled" with its claim's
transaction — and no script error on the way."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agora.agents.identity import Identity
from agora.gateway import GatewayClient
from tests.gateway.chromium import Chromium
from tests.gateway.conftest import Served

pytestmark = [pytest.mark.chain, pytest.mark.slow]


@pytest.fixture
def browser() -> Iterator[Chromium]:
    page = Chromium()
    yield page
    page.close()


def test_the_explorer_shows_services_a_live_chart_jobs_and_deals_reaching_settled(served: Served, browser: Chromium) -> None:
    browser.open(served.url + "/")
    rows = browser.wait_for(
        "document.querySelectorAll('#services tr.service').length >= 6 && [...document.querySelectorAll('#services tr.service')].map(r => r.innerText)"
    )
    assert any("model-call" in r and "all-MiniLM-L6-v2" in r for r in rows) and any(r.startswith("compute") for r in rows)
    assert any(r.startswith("dataset") and "demo-sentences" in r for r in rows)
    assert "chain" in browser.evaluate("document.getElementById('chain').innerText")

    # the chart: trades arrive by server-sent events and the canvas draws them, more as they come
    first = int(browser.wait_for("Number(document.getElementById('chart').dataset.points || 0)", timeout=60))
    painted = browser.evaluate(
        "(() => { const c = document.getElementById('chart'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; })()"
    )
    assert painted > 500  # axes, labels and at least one market's line
    later = int(
        browser.wait_for(
            f"Number(document.getElementById('chart').dataset.points) > {first} && Number(document.getElementById('chart').dataset.points)", timeout=60
        )
    )
    assert later > first
    assert browser.evaluate("document.querySelectorAll('#trades tbody tr').length") >= 1

    # a job submitted through the gateway walks relayed -> answered -> settled on the page
    me = Identity.from_seed("gateway-explorer", "erin")
    served.market.locked(lambda: served.market.ledger.mint(me.address, 10**18))
    with GatewayClient(served.url, me) as client:
        server = client.services(kind="model-call")[0]
        client.open_account()
        channel = client.open_channel(server["address"], deposit=3 * server["price"])
        job = client.call(server["address"], ["shown in a browser"], channel, price=server["price"])
    status = browser.wait_for(
        f"(document.querySelector('#jobs tr[data-job=\"{job['job_id']}\"]') || {{}}).dataset?.status === 'settled' && document.querySelector('#jobs tr[data-job=\"{job['job_id']}\"]').innerText",
        timeout=60,
    )
    assert "relayed" in status and "answered" in status and "settled" in status and "0x" in status  # the journey and the claim's tx

    # the buyer's deal: call, bids, contract signed, escrow funded, run, delivered, verified, settled, with tx hashes
    deal = browser.wait_for("(document.querySelector('#deals tr.deal[data-status=\"settled\"]') || {}).innerText", timeout=90)
    for step in ("call", "bids", "signed", "funded", "delivered", "verified", "settled"):
        assert step in deal, deal
    assert deal.count("0x") >= 2  # the escrow's funding and its release, on the chain
    assert browser.exceptions == []
