"""The gateway end to end: a real uvicorn server on 127.0.0.1 in front of a hosted market (real
MiniLM inference, the embedded EVM chain), reached with a real HTTP client, as a caller with
only a key would: discover, open an account and a channel through relayed signed transactions,
pay a call by voucher, check the answer against the model run here, and find the server's and
the model owner's earnings on the chain."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import pytest

from agora.agents.identity import Identity
from agora.gateway import GatewayClient, GatewayHTTPError, create_app, embeddings, sign_request
from agora.gateway.auth import ADDRESS, NONCE, SIGNATURE, TIMESTAMP
from agora.gateway.server import serve_in_thread
from tests.gateway.conftest import Served

pytestmark = [pytest.mark.chain, pytest.mark.slow]

TOKEN = 10**18


@pytest.fixture
def caller(served: Served) -> Iterator[Callable[..., GatewayClient]]:
    """Clients for callers with their own keys (funded on the ledger by the operator), closed after."""
    made: list[GatewayClient] = []

    def make(name: str | None = None, funds: int = TOKEN) -> GatewayClient:
        me = Identity.from_seed("gateway-tests", name) if name else None
        if me is not None and funds:
            served.market.locked(lambda: served.market.ledger.mint(me.address, funds))
        made.append(GatewayClient(served.url, me))
        return made[-1]

    yield make
    for client in made:
        client.close()


def test_a_caller_with_only_a_key_pays_a_call_and_the_server_and_owner_are_paid_on_chain(served: Served, caller, model_dir) -> None:
    client = caller("alice")
    ledger = served.market.ledger
    offers = client.services(kind="model-call", name="all-MiniLM-L6-v2")
    assert len(offers) == 2 and all(o["price"] > 0 and 0.0 <= o["reputation"] <= 1.0 for o in offers)
    server = min(offers, key=lambda o: o["price"])
    owner, royalty = server["terms"]["owner"], int(server["terms"]["royalty_per_call"])
    model = client.services(kind="model", name="all-MiniLM-L6-v2")
    assert [m["address"] for m in model] == [owner] and model[0]["price"] == royalty > 0

    client.open_account()
    channel = client.open_channel(server["address"], deposit=5 * server["price"])
    before = {who: ledger.balance_of(who) for who in (server["address"], client.identity.address)}
    settled_block = served.market.locked(lambda: ledger.w3.eth.block_number)
    texts = ["A GPU hour costs less at night.", "Agents sign contracts with each other."]
    job = client.call(server["address"], texts, channel, price=server["price"])
    assert job["status"] in ("answered", "settled"), job
    vectors = embeddings(job)

    from agora.tasks.runner import EmbeddingRunner

    expected, _ = EmbeddingRunner(model_dir).embed(texts)
    assert vectors.shape == expected.shape == (2, 384)
    assert np.allclose(vectors, expected, atol=1e-4)  # the model really ran on these inputs

    settled = client.job(job["job_id"], wait=20)
    assert settled["status"] == "settled" and settled["claim_tx"].startswith("0x"), settled
    assert [s["step"] for s in settled["steps"]] == ["relayed", "answered", "settled"]
    fee = server["price"] - royalty
    assert ledger.balance_of(server["address"]) - before[server["address"]] == fee  # what the claim paid, less the royalty passed on
    # the owner also earns from the buyer's deals meanwhile: find this call's royalty on the token itself
    royalties = served.market.locked(lambda: ledger.token.events.Transfer.get_logs(from_block=settled_block, argument_filters={"sender": server["address"]}))
    assert [(e["args"]["receiver"], e["args"]["value"]) for e in royalties] == [(owner, royalty)]
    assert client.channel(channel)["deposit"] == 4 * server["price"]
    assert ledger.balance_of(client.identity.address) == before[client.identity.address]  # paid from the channel's deposit
    assert served.market.locked(ledger.is_conserved)  # read with the market held still: traders trade meanwhile

    second = client.call(server["address"], ["one more"], channel, price=server["price"])  # the next voucher counts from the claim
    assert second["status"] in ("answered", "settled") and embeddings(second).shape == (1, 384)
    assert client.job(second["job_id"], wait=20)["status"] == "settled"
    assert client.channel(channel)["deposit"] == 3 * server["price"]
    assert [j["job_id"] for j in client.jobs()] == [second["job_id"], job["job_id"]]


def test_a_retried_submit_with_the_same_idempotency_key_is_the_same_job_and_pays_once(served: Served, caller) -> None:
    client = caller("bob")
    server = client.services(kind="model-call")[0]
    client.open_account()
    channel = client.open_channel(server["address"], deposit=3 * server["price"])
    payment = client.voucher(channel, server["price"])
    body = {"service": server["address"], "inputs": ["pay me once"], "payment": payment}
    first = client.request("POST", "/v1/jobs", body=body, params={"wait": 20}, signed=True, headers={"Idempotency-Key": "retry-key-000001"})
    again = client.request("POST", "/v1/jobs", body=body, params={"wait": 20}, signed=True, headers={"Idempotency-Key": "retry-key-000001"})
    assert again["job_id"] == first["job_id"]
    assert client.job(first["job_id"], wait=20)["status"] == "settled"
    assert client.channel(channel)["deposit"] == 2 * server["price"]  # charged once
    other = {**body, "inputs": ["something else"]}
    with pytest.raises(GatewayHTTPError) as err:
        client.request("POST", "/v1/jobs", body=other, signed=True, headers={"Idempotency-Key": "retry-key-000001"})
    assert err.value.status == 409 and "Idempotency-Key" in err.value.detail
    # the same voucher without the key: the server refuses it (claimed already: its nonce is past), nothing is paid
    with pytest.raises(GatewayHTTPError) as err:
        client.request("POST", "/v1/jobs", body=body, params={"wait": 20}, signed=True)
    assert err.value.status == 402 and "payment refused" in err.value.detail
    assert client.channel(channel)["deposit"] == 2 * server["price"]


def test_a_call_paid_by_escrow_is_released_once_checked_or_ruled_by_the_arbiter(served: Served, caller) -> None:
    from agora.chain.types import split

    client = caller("erin")
    ledger, me = served.market.ledger, client.identity.address
    server = min(client.services(kind="model-call", name="all-MiniLM-L6-v2"), key=lambda o: o["price"])
    owner, royalty = server["terms"]["owner"], int(server["terms"]["royalty_per_call"])
    fee = server["price"] - royalty
    client.open_account()
    quote = client.open_escrow(server["address"], seconds=600)
    terms = quote["terms"]
    assert terms["payees"] == [server["address"], owner] and terms["amount"] >= server["price"]
    assert all(line >= due for line, due in zip(split(terms["amount"], terms["shares_bps"]), [fee, royalty], strict=False))
    before = {who: ledger.balance_of(who) for who in (server["address"], me)}
    block = served.market.locked(lambda: ledger.w3.eth.block_number)
    job = client.call_escrowed(server["address"], ["paid from an escrow"], terms["escrow_id"], wait=30)
    assert job["status"] == "answered" and job["payment"] == "escrow" and embeddings(job).shape == (1, 384), job
    assert job["release"] == [fee, royalty]
    with pytest.raises(GatewayHTTPError) as again:  # one escrow pays one call
        client.call_escrowed(server["address"], ["and another?"], terms["escrow_id"])
    assert again.value.status == 402 and "one per call" in again.value.detail
    receipt = client.release(job)
    settled = client.job(job["job_id"], wait=10)
    assert settled["status"] == "settled" and settled["claim_tx"] == receipt["tx_hash"] and settled["paid"] == server["price"], settled
    assert ledger.balance_of(server["address"]) - before[server["address"]] == fee
    assert ledger.balance_of(me) == before[me] + terms["amount"] - server["price"]  # what the lock held beyond the bill came back
    paid = served.market.locked(lambda: ledger.token.events.Transfer.get_logs(from_block=block, argument_filters={"receiver": owner}))
    assert [e["args"]["value"] for e in paid if "0x" + e["transactionHash"].hex().removeprefix("0x") == receipt["tx_hash"]] == [royalty]

    # disputed: the server puts the result before the arbiter, who re-runs the job and pays the escrow's split
    quote = client.open_escrow(server["address"])
    job = client.call_escrowed(server["address"], ["is this right?"], quote["terms"]["escrow_id"], wait=30)
    assert job["status"] == "answered", job
    client.dispute(job)
    ruled = client.job(job["job_id"], wait=30)
    assert ruled["status"] == "settled" and ruled["claim_tx"], ruled
    kinds = [e.kind for e in served.market.locked(lambda: ledger.events(from_block=block)) if e.args.get("deal_id") == quote["terms"]["escrow_id"]]
    assert kinds == ["Opened", "Disputed", "Released"]
    assert ledger.balance_of(server["address"]) - before[server["address"]] == fee + split(server["price"], quote["terms"]["shares_bps"])[0]

    # an escrow the server's checks refuse (no line for the model's owner): refused, nothing paid, the lock stays the caller's
    bad = {
        **client.request("GET", f"/v1/services/{server['address']}/escrow", params={"buyer": me})["terms"],
        "payees": [server["address"]],
        "shares_bps": [10_000],
    }
    client.execute("open_escrow", terms=bad)
    with pytest.raises(GatewayHTTPError) as refused:
        client.call_escrowed(server["address"], ["underpaid"], bad["escrow_id"])
    assert refused.value.status == 402 and "model's owner" in refused.value.detail
    assert client.request("GET", f"/v1/escrows/{bad['escrow_id']}")["status"] == "open"
    assert served.market.locked(ledger.is_conserved)
    market = served.market
    status = lambda: market.locked(lambda: market.runtime.query(server["address"], "escrow_status", quote["terms"]["escrow_id"]))  # noqa: E731
    deadline = time.monotonic() + 10
    while status() != "done" and time.monotonic() < deadline:  # the server lets go of a settled escrow's call, result and all
        time.sleep(0.2)
    assert status() == "done"

    # the owner's royalty on an escrowed call is its own line of the escrow: the server's next channel
    # claim hands on the royalty of that claim's calls alone, not of the escrowed ones
    channel = client.open_channel(server["address"], deposit=2 * server["price"])
    block = served.market.locked(lambda: ledger.w3.eth.block_number)
    assert client.job(client.call(server["address"], ["by channel again"], channel, price=server["price"])["job_id"], wait=20)["status"] == "settled"
    handed = served.market.locked(lambda: ledger.token.events.Transfer.get_logs(from_block=block, argument_filters={"sender": server["address"]}))
    assert [(e["args"]["receiver"], e["args"]["value"]) for e in handed] == [(owner, royalty)]

    # a release's amounts are the caller's choice; one short of the bill is held against the caller:
    # no more escrowed calls for it at this server (its channel still serves it)
    quote = client.open_escrow(server["address"])
    job = client.call_escrowed(server["address"], ["paid short"], quote["terms"]["escrow_id"], wait=30)
    assert job["status"] == "answered", job
    client.execute("release_items", escrow_id=job["escrow_id"], amounts=[fee - 1, royalty])
    short = client.job(job["job_id"], wait=10)
    assert short["status"] == "settled" and short["paid"] == server["price"] - 1, short
    assert f"paying {server['price'] - 1} of the {server['price']} bill" in short["steps"][-1]["detail"]
    shortfall = lambda: market.locked(lambda: market.runtime.query(server["address"], "shortfall", me))  # noqa: E731
    deadline = time.monotonic() + 10
    while shortfall() == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert shortfall() == 1
    quote = client.open_escrow(server["address"])
    with pytest.raises(GatewayHTTPError) as barred:
        client.call_escrowed(server["address"], ["and again"], quote["terms"]["escrow_id"])
    assert barred.value.status == 402 and "released 1 less than the bill" in barred.value.detail
    assert client.request("GET", f"/v1/escrows/{quote['terms']['escrow_id']}")["status"] == "open"  # nothing taken: its deadline refunds it
    assert served.market.locked(ledger.is_conserved)


def test_wrong_expired_and_replayed_signatures_get_401_with_the_reason(served: Served) -> None:
    me = Identity.from_seed("gateway-tests", "carol")
    other = Identity.from_seed("gateway-tests", "mallory")
    domain = httpx.get(f"{served.url}/v1/chain", timeout=90).json()["domains"]["request"]
    path = "/v1/jobs"

    def get(headers: dict[str, str]) -> httpx.Response:
        return httpx.get(served.url + path, headers=headers, timeout=90)

    assert get({}).status_code == 401 and "missing headers" in get({}).json()["detail"]
    good = sign_request(me, domain, "GET", path)
    assert get(good).status_code == 200
    replay = get(good)
    assert replay.status_code == 401 and replay.json()["detail"].startswith("replayed")
    forged = {**sign_request(other, domain, "GET", path), ADDRESS: me.address}
    assert get(forged).status_code == 401 and get(forged).json()["detail"].startswith("wrong signature")
    other_path = sign_request(me, domain, "GET", "/v1/jobs?limit=1")  # signed for another request
    assert get(other_path).json()["detail"].startswith("wrong signature")
    stale = sign_request(me, domain, "GET", path, timestamp=int(time.time()) - 3600)
    answer = get(stale)
    assert answer.status_code == 401 and answer.json()["detail"].startswith("expired") and answer.json()["field"] == TIMESTAMP
    junk = {**sign_request(me, domain, "GET", path), NONCE: "not-a-number"}
    assert get(junk).status_code == 401
    bad_sig = {**sign_request(me, domain, "GET", path), SIGNATURE: "0x1234"}
    assert get(bad_sig).status_code == 401


def test_bad_input_gets_4xx_naming_the_field_and_changes_nothing(served: Served, caller) -> None:
    client = caller("dave")
    ledger = served.market.ledger
    server = client.services(kind="model-call")[0]
    client.open_account()
    channel = client.open_channel(server["address"], deposit=2 * server["price"])
    supply, deposit = ledger.total_supply(), client.channel(channel)["deposit"]
    payment = client.voucher(channel, server["price"])
    cases = [
        ({"service": server["address"], "inputs": [], "payment": payment}, 422, "inputs"),
        ({"service": "0x123", "inputs": ["x"], "payment": payment}, 422, "service"),
        ({"service": server["address"], "inputs": ["x"], "payment": {**payment, "amount": -1}}, 422, "payment.amount"),
        ({"service": server["address"], "inputs": ["x"], "payment": {**payment, "channel_id": "0xzz"}}, 422, "payment.channel_id"),
        ({"service": server["address"], "inputs": ["x"], "payment": {**payment, "amount": payment["amount"] + 1}}, 402, None),
        ({"service": ledger.arbiter, "inputs": ["x"], "payment": payment}, 404, None),
    ]
    for body, status, field in cases:
        with pytest.raises(GatewayHTTPError) as err:
            client.request("POST", "/v1/jobs", body=body, params={"wait": 20}, signed=True)
        assert err.value.status == status, (body, err.value)
        if field is not None:
            assert err.value.field == field, err.value
    for op, args, field in [
        ("transfer", {"to": "nobody", "amount": 1}, "args.to"),
        ("transfer", {"to": server["address"], "amount": "1"}, "args.amount"),
        ("transfer", {"amount": 1}, "args.to"),
        ("open_channel", {"terms": {"channel_id": "0x01"}}, "args.terms"),
        ("transfer", {"to": server["address"], "amount": 1, "memo": "x"}, "args.memo"),
    ]:
        with pytest.raises(GatewayHTTPError) as err:
            client.execute(op, **args)
        assert err.value.status == 422 and err.value.field.startswith(field), (op, args, err.value)
    with pytest.raises(GatewayHTTPError) as err:
        client.execute("transfer", to=server["address"], amount=10**30)  # more than it holds
    assert err.value.status == 402
    with pytest.raises(GatewayHTTPError) as err:
        client.request("POST", "/v1/tx", body={"op": "mint", "args": {}}, signed=True)  # not a caller's operation
    assert err.value.status == 422 and err.value.field == "op"
    assert ledger.total_supply() == supply and client.channel(channel)["deposit"] == deposit
    assert served.market.locked(ledger.is_conserved)  # read with the market held still: traders trade meanwhile


def test_rate_limits_answer_429_with_retry_after(served: Served) -> None:
    running = serve_in_thread(create_app(served.market, rate=1, burst=3))
    url = running.url
    try:
        codes = [httpx.get(f"{url}/v1/market/prices", timeout=90) for _ in range(5)]
        assert [c.status_code for c in codes[:3]] == [200, 200, 200]
        limited = codes[-1]
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1 and limited.json()["error"] == "rate_limited"
    finally:
        running.stop()


def test_market_data_profiles_and_the_live_stream(served: Served, caller) -> None:
    client = caller()
    deadline = time.monotonic() + 60
    while not client.trades()["trades"] and time.monotonic() < deadline:
        time.sleep(0.5)  # the GPU-hour auction trades within a few of its 1 s rounds
    page = client.trades()
    assert page["trades"] and page["last_seq"] >= page["trades"][-1]["seq"]
    gpu = next(p for p in client.prices() if p["market"] == "gpu")
    assert gpu["trades"] >= 1 and gpu["low"] <= gpu["last"] <= gpu["high"]
    seller = page["trades"][-1]["seller"]
    assert client.profile(seller)["role"] == "trader"
    with pytest.raises(GatewayHTTPError) as err:
        client.profile(Identity.from_seed("gateway-tests", "nobody").address)
    assert err.value.status == 404
    with httpx.stream("GET", f"{served.url}/v1/market/stream", params={"since": 0, "once": True}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    assert "event: trade" in text and f"id: {page['trades'][0]['seq']}" in text
    assert httpx.get(f"{served.url}/", timeout=90).text.count("Agora market explorer") >= 1
    spec = httpx.get(f"{served.url}/openapi.json", timeout=90).json()
    assert {"/v1/services", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/tx", "/v1/market/stream"} <= set(spec["paths"])
