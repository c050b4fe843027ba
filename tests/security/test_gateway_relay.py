"""Issue 18 (holes 2 and 4) and issue 19 (items 6 and 9), at the gateway: every write endpoint,
given a signed request whose content differs from what the gateway prepared or quoted, answers
a 4xx that names the field, and nothing changes (balances, the chain's nonce, the prepared write
its owner may still submit). Also: idempotency keys of one shape, namespaced by the caller; a
request signed for one gateway refused by another; a signed wait authorized before it waits,
and bounded per caller.

One small hosted market on the embedded chain (an arbiter, a model owner and one server of the
packaged MiniLM), behind a real uvicorn server, reached with a real HTTP client."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agora.agents.identity import Identity
from agora.chain.offchain import call_authorization_typed_data
from agora.chain.types import owned_id
from agora.gateway import GatewayClient, GatewayHTTPError, create_app
from agora.gateway.server import Running, serve_in_thread

pytestmark = [pytest.mark.chain, pytest.mark.slow]

TOKEN = 10**18
FEE, ROYALTY = 2 * 10**15, 10**15
MAX_WAITS = 3


def _scenario() -> Any:
    from agora.simulations.scenario import Scenario

    return Scenario.model_validate(
        {
            "version": 1,
            "name": "relay-checks",
            "seed": 18,
            "duration": 3600,
            "step": 5,
            "ledger": "embedded",
            "agents": [
                {"role": "arbiter", "name": "arbiter"},
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
    )


class Gateway:
    def __init__(self, market: Any, running: Running) -> None:
        self.market, self.running, self.url = market, running, running.url
        self.ledger = market.ledger


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    from agora.simulations.hosted import HostedMarket

    market = HostedMarket(_scenario())
    running = serve_in_thread(create_app(market, rate=10_000, burst=10_000, max_waits=MAX_WAITS))
    yield Gateway(market, running)
    running.stop()
    market.close()


@pytest.fixture
def caller(gateway: Gateway) -> Iterator[Callable[[str], GatewayClient]]:
    """Clients for callers with their own keys, funded and with an account open."""
    made: list[GatewayClient] = []

    def make(name: str) -> GatewayClient:
        me = Identity.from_seed("relay-checks", name)
        gateway.ledger.mint(me.address, TOKEN)
        client = GatewayClient(gateway.url, me)
        client.open_account()
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def _server(client: GatewayClient) -> dict[str, Any]:
    (server,) = client.services(kind="model-call", name="all-MiniLM-L6-v2")
    return server


def _refused(fn: Callable[[], Any]) -> GatewayHTTPError:
    with pytest.raises(GatewayHTTPError) as err:
        fn()
    return err.value


def _prepare(client: GatewayClient, op: str, **args: Any) -> dict[str, Any]:
    answer = client.request("POST", "/v1/tx", body={"op": op, "args": args}, signed=True)
    assert answer["status"] == "sign", answer
    return answer


def _unsent(tx: dict[str, Any]) -> dict[str, Any]:
    """``tx`` without its sender, for another key to sign."""
    return {k: v for k, v in tx.items() if k != "from"}


def _post_signed(client: GatewayClient, prepared_id: str, raw: bytes) -> dict[str, Any]:
    return client.request("POST", f"/v1/tx/{prepared_id}", body={"signed": "0x" + raw.hex()}, signed=True)


# -- POST /v1/tx/{id}: the signed bytes must be the prepared transaction ---------------------------
def test_signed_bytes_that_are_not_the_prepared_transaction_are_refused_naming_signed(gateway: Gateway, caller) -> None:
    alice, bob = caller("alice"), Identity.from_seed("relay-checks", "bob")
    ledger, me = gateway.ledger, alice.identity
    answer = _prepare(alice, "transfer", to=bob.address, amount=5)
    tx = answer["tx"]
    # the attack of hole 2: a prepared transfer, and signed bytes that call transferFromMany (not a relayed op)
    many = ledger.token.encode_abi("transferFromMany", args=[[me.address], [bob.address], [5], b"\x01" * 32])
    variants: list[tuple[str, bytes]] = [
        ("data", me.sign_transaction({**tx, "data": many})),  # another operation on the same contract
        ("to", me.sign_transaction({**tx, "to": ledger.escrow_contract.address})),  # another target
        ("data", me.sign_transaction({**tx, "data": ledger.token.encode_abi("transfer", args=[bob.address, 500])})),  # another amount
        ("value", me.sign_transaction({**tx, "value": 1})),
        ("chain id", me.sign_transaction({**tx, "chainId": tx["chainId"] + 1})),
        ("nonce", me.sign_transaction({**tx, "nonce": tx["nonce"] + 1})),  # a gap: the node would queue it and never mine it
        ("gas", me.sign_transaction({**tx, "gas": tx["gas"] * 2})),
        ("signer", Identity.from_seed("relay-checks", "mallory").sign_transaction(_unsent(tx))),
    ]
    undecodable = [b"\x00", b"\xc0", b"\xff" * 100, b"\x02" + b"junk" * 8]
    before = (ledger.balance_of(me.address), ledger.balance_of(bob.address), ledger.w3.eth.get_transaction_count(me.address))
    for field, raw in variants + [("signed", raw) for raw in undecodable]:
        err = _refused(lambda raw=raw: _post_signed(alice, answer["prepared_id"], raw))
        assert (err.status, err.field) == (400, "signed"), (field, err)
        words = ("signer", "signed by") if field == "signer" else (field,)
        assert err.detail.startswith("signed:") and any(w in err.detail for w in words), (field, err.detail)
    assert (ledger.balance_of(me.address), ledger.balance_of(bob.address), ledger.w3.eth.get_transaction_count(me.address)) == before
    # the prepared write is still its owner's to submit, with the right bytes
    receipt = _post_signed(alice, answer["prepared_id"], me.sign_transaction(tx))["receipt"]
    assert receipt["op"] == "transfer" and ledger.balance_of(bob.address) == before[1] + 5
    err = _refused(lambda: _post_signed(alice, answer["prepared_id"], me.sign_transaction(tx)))  # once
    assert (err.status, err.field) == (404, "prepared_id")


def test_someone_elses_prepared_write_is_refused_and_stays_theirs(gateway: Gateway, caller) -> None:
    alice, mallory = caller("alice2"), caller("mallory2")
    ledger, bob = gateway.ledger, Identity.from_seed("relay-checks", "bob2")
    answer = _prepare(alice, "transfer", to=bob.address, amount=7)
    theirs = alice.identity.sign_transaction(answer["tx"])  # even alice's own bytes, captured, relayed by mallory
    for raw in (theirs, mallory.identity.sign_transaction(_unsent(answer["tx"]))):
        err = _refused(lambda raw=raw: _post_signed(mallory, answer["prepared_id"], raw))
        assert (err.status, err.field) == (403, "prepared_id"), err
    err = _refused(lambda: _post_signed(alice, answer["prepared_id"], b"\xc0"))  # a refused submit by its owner ...
    assert (err.status, err.field) == (400, "signed")
    err = _refused(lambda: _post_signed(mallory, answer["prepared_id"], theirs))  # ... keeps it, for its owner alone
    assert (err.status, err.field) == (403, "prepared_id")
    assert ledger.balance_of(bob.address) == 0
    _post_signed(alice, answer["prepared_id"], theirs)
    assert ledger.balance_of(bob.address) == 7


# -- POST /v1/jobs: the payment must be the caller's and pay what was quoted ------------------------
def test_a_payment_that_is_not_what_was_quoted_is_refused_naming_it_and_nothing_moves(gateway: Gateway, caller) -> None:
    alice, bob = caller("alice3"), caller("bob3")
    ledger, server = gateway.ledger, _server(alice)
    stranger = Identity.from_seed("relay-checks", "stranger").address
    quote = alice.request("GET", f"/v1/services/{server['address']}/escrow", params={"buyer": alice.identity.address})["terms"]

    def job(client: GatewayClient, payment: dict[str, Any]) -> GatewayHTTPError:
        return _refused(
            lambda: client.request(
                "POST", "/v1/jobs", body={"service": server["address"], "inputs": ["x"], "payment": payment}, params={"wait": 20}, signed=True
            )
        )

    wrong_payee = {**quote, "escrow_id": owned_id(alice.identity.address, "wrong payee"), "payees": [stranger, server["terms"]["owner"]]}
    short = {**quote, "escrow_id": owned_id(alice.identity.address, "short"), "amount": server["price"] - 1}
    bobs = {**quote, "escrow_id": owned_id(bob.identity.address, "bob's")}
    alice.execute("open_escrow", terms=wrong_payee)
    alice.execute("open_escrow", terms=short)
    bob.execute("open_escrow", terms=bobs)
    mine = alice.open_channel(stranger, deposit=server["price"])  # a channel to someone else
    bob_channel = bob.open_channel(server["address"], deposit=server["price"])
    held = {a: ledger.balance_of(a) for a in (alice.identity.address, bob.identity.address, server["address"], stranger)}

    def escrowed(terms: dict[str, Any], signer: GatewayClient = alice, inputs: tuple[str, ...] = ("x",)) -> dict[str, Any]:
        typed = call_authorization_typed_data(
            ledger.domains()["escrow"], terms["escrow_id"], server["address"], server["terms"]["model_hash"], server["terms"]["task"], list(inputs)
        )
        return {"kind": "escrow", "escrow_id": terms["escrow_id"], "authorization": signer.identity.sign_typed_data(typed)}

    cases = [
        (escrowed(wrong_payee), "payment.escrow_id", "pays"),
        (escrowed(bobs), "payment.escrow_id", "not the caller's"),
        (escrowed(short), "payment", "payment refused"),
        ({**alice.voucher(mine, server["price"])}, "payment.channel_id", "pays"),
        ({**bob.voucher(bob_channel, server["price"])}, "payment.channel_id", "not the caller's"),
    ]
    for payment, field, words in cases:
        err = job(alice, payment)
        assert (err.status, err.field) == (402, field) and words in err.detail, (payment, err)
    assert {a: ledger.balance_of(a) for a in held} == held
    assert {ledger.escrow(t["escrow_id"]).status for t in (wrong_payee, short, bobs)} == {"open"}
    assert alice.channel(mine)["deposit"] == bob.channel(bob_channel)["deposit"] == server["price"]


# -- Idempotency-Key: one shape, and one caller's key never answers another's request -----------------
def test_idempotency_keys_have_one_shape_and_are_the_callers_own(gateway: Gateway, caller) -> None:
    alice, bob = caller("alice4"), caller("bob4")
    server = _server(alice)

    def body(client, channel):
        return {
            "service": server["address"],
            "inputs": ["x"],
            "payment": {**client.voucher(channel, server["price"]), "amount": server["price"] + 1},
        }  # refused by the server: a job, nothing paid

    a_channel, b_channel = alice.open_channel(server["address"], deposit=server["price"]), bob.open_channel(server["address"], deposit=server["price"])
    for key in ("k", "x" * 15, "x" * 129, "has space in it", "dots.are.not.allowed", "semi;colon-0123456"):
        err = _refused(lambda key=key: alice.request("POST", "/v1/jobs", body=body(alice, a_channel), signed=True, headers={"Idempotency-Key": key}))
        assert (err.status, err.field) == (400, "Idempotency-Key") and "16" in err.detail and "128" in err.detail, (key, err)
    key = "shared-key-0123456789"
    first = _refused(lambda: alice.request("POST", "/v1/jobs", body=body(alice, a_channel), params={"wait": 20}, signed=True, headers={"Idempotency-Key": key}))
    again = _refused(lambda: alice.request("POST", "/v1/jobs", body=body(alice, a_channel), params={"wait": 20}, signed=True, headers={"Idempotency-Key": key}))
    theirs = _refused(lambda: bob.request("POST", "/v1/jobs", body=body(bob, b_channel), params={"wait": 20}, signed=True, headers={"Idempotency-Key": key}))
    job = lambda err: err.detail.rsplit("(job ", 1)[1].rstrip(")")  # noqa: E731
    assert first.status == again.status == theirs.status == 402
    assert job(first) == job(again) != job(theirs)  # alice's retry is her job; bob's request with her key is his own


# -- the request domain names the gateway ---------------------------------------------------------------
def test_a_request_signed_for_one_gateway_is_refused_by_another(gateway: Gateway, caller) -> None:
    import httpx

    from agora.gateway import sign_request

    alice = caller("alice5")
    other = serve_in_thread(create_app(gateway.market, rate=10_000, burst=10_000))  # a second gateway on the same market and chain
    try:
        domain = alice.chain()["domains"]["request"]
        assert httpx.get(f"{other.url}/v1/chain", timeout=90).json()["domains"]["request"] != domain
        headers = sign_request(alice.identity, domain, "GET", "/v1/jobs")
        answer = httpx.get(f"{other.url}/v1/jobs", headers=headers, timeout=90)  # replayed to the other gateway
        assert answer.status_code == 401 and answer.json()["field"] == "Agora-Signature", answer.text
        assert "this gateway" in answer.json()["detail"]
        assert httpx.get(f"{gateway.url}/v1/jobs", headers=headers, timeout=90).status_code == 200  # the one it was signed for
    finally:
        other.stop()


# -- a signed wait: authorized before it waits, and a few at a time per caller ---------------------------
def _unfinished_job(alice: GatewayClient) -> dict[str, Any]:
    """An escrowed call answered and not yet released: it stays unfinished until its caller acts."""
    server = _server(alice)
    quote = alice.open_escrow(server["address"])
    job = alice.call_escrowed(server["address"], ["waiting on its caller"], quote["terms"]["escrow_id"], wait=60)
    assert job["status"] == "answered", job
    return job


def _concurrently(calls: list[Callable[[], Any]]) -> list[tuple[int, Any]]:
    """Run ``calls`` at once; (index, outcome) in the order they completed."""
    done: list[tuple[int, Any]] = []
    lock = threading.Lock()

    def run(i: int, fn: Callable[[], Any]) -> None:
        try:
            out: Any = fn()
        except GatewayHTTPError as exc:
            out = exc
        with lock:
            done.append((i, out))

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return done


def test_a_wait_on_another_callers_job_is_refused_before_it_waits(gateway: Gateway, caller) -> None:
    alice, mallory = caller("alice6"), caller("mallory6")
    job = _unfinished_job(alice)
    done = _concurrently(
        [
            lambda: alice.job(job["job_id"], wait=2),  # the owner's own wait: the job stays unfinished, so this ends at its wait
            lambda: mallory.job(job["job_id"], wait=30),  # another caller's: refused at once, not after 30 s
        ]
    )
    order = [i for i, _ in done]
    outcomes = dict(done)
    assert isinstance(outcomes[1], GatewayHTTPError) and (outcomes[1].status, outcomes[1].field) == (403, "job_id"), outcomes[1]
    assert outcomes[0]["status"] == "answered"
    assert order == [1, 0]  # mallory's refusal came back while alice's wait still ran


def test_concurrent_waits_are_bounded_per_caller(gateway: Gateway, caller) -> None:
    alice, bob = caller("alice7"), caller("bob7")
    job = _unfinished_job(alice)
    calls = [lambda: alice.job(job["job_id"], wait=5) for _ in range(MAX_WAITS + 2)]
    done = _concurrently([*calls, lambda: bob.jobs()])  # another caller is not held up by alice's waits
    limited = [out for _, out in done if isinstance(out, GatewayHTTPError)]
    answered = [i for i, out in done if isinstance(out, dict) and out.get("job_id") == job["job_id"]]
    assert len(answered) == MAX_WAITS and len(limited) == 2, done
    assert all(e.status == 429 and e.retry_after and f"{MAX_WAITS} concurrent waits" in e.detail for e in limited), limited
    order = [i for i, _ in done]
    assert max(order.index(i) for i, out in done if out in limited) < min(order.index(i) for i in answered)  # refused, not queued
    assert order.index(len(calls)) < min(order.index(i) for i in answered)  # bob's read came back while alice waited


def test_gas_goes_only_to_keys_that_hold_tokens(gateway: Gateway) -> None:
    """Opening an account hands the key the chain's gas: a stranger making fresh keys and opening
    an account with each drained the operator's coin. A key holding no tokens is refused (402
    naming ``op``) and gets nothing; once it holds tokens, it opens its account as before."""
    fresh = Identity.from_seed("relay-checks", "fresh-key")
    with GatewayClient(gateway.url, fresh) as client:
        err = _refused(client.open_account)
        assert (err.status, err.field) == (402, "op") and "holds tokens" in err.detail
        assert gateway.ledger.w3.eth.get_balance(fresh.address) == 0
        gateway.ledger.mint(fresh.address, TOKEN)
        client.open_account()
        assert gateway.ledger.w3.eth.get_balance(fresh.address) > 0
