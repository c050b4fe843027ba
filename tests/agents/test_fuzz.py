"""Random and malformed envelopes get typed refusals, never a crash: whatever arrives, the host
counts a rejection (or a handler error) and the agent goes on answering real messages."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agora.agents import Agent, Context, Identity, LocalRuntime, Message, on_message
from agora.agents.messages import Envelope
from agora.chain import MemoryLedger

KEY = Identity.from_seed("fuzz", "echo")
PEER = Identity.from_seed("fuzz", "peer")


class Ping(Message):
    n: int


class Echo(Agent):
    def __init__(self, name: str, identity: Identity) -> None:
        super().__init__(name, identity)
        self.seen: list[int] = []

    @on_message(Ping)
    def ping(self, ctx: Context, sender: str, msg: Ping) -> None:
        self.seen.append(msg.n)


junk = st.one_of(
    st.none(), st.integers(-5, 2**70), st.floats(allow_nan=True), st.text(max_size=30), st.binary(max_size=10), st.lists(st.integers(), max_size=3)
)
payloads = st.one_of(
    st.text(max_size=60),
    st.sampled_from(['{"n": 1}', '{"n": "x"}', '{"n": 1, "extra": 2}', "[]", "{", '{"n": 1e400}', '{"deal_id": 5, "n": 2}', "null"]),
)


def _host():
    rt = LocalRuntime(MemoryLedger(), seed=1)
    echo = Echo("echo", KEY)
    rt.add(echo)
    rt.start()
    return rt, echo, rt._hosts[echo.address]


@settings(max_examples=200)
@given(
    sender=st.one_of(st.just(PEER.address), junk),
    digest=st.one_of(st.just(Ping.schema_digest()), st.text(max_size=64), junk),
    payload=st.one_of(payloads, junk),
    nonce=st.one_of(st.integers(0, 10), junk),
    expires=st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=True), junk),
    signature=st.one_of(st.just(""), st.text(max_size=140), junk),
)
def test_malformed_envelopes_are_refused_with_typed_errors(sender, digest, payload, nonce, expires, signature) -> None:
    rt, echo, host = _host()
    env = Envelope(sender, echo.address, digest, payload, nonce, "", expires, signature)  # type: ignore[arg-type]
    host.deliver(env, now=rt.now(), remote=True)  # must not raise, whatever it holds
    assert echo.seen == [] or env.signature  # nothing unsigned reaches the handler under signing
    assert sum(host.inbox.rejected.values()) + len(host.errors) >= 1 or echo.seen
    good = Envelope.seal(PEER, echo.address, Ping(n=7), nonce=10**6)
    host.deliver(good, now=rt.now(), remote=True)
    assert echo.seen[-1] == 7  # and it still answers a real message


@settings(max_examples=200)
@given(payload=payloads)
def test_signed_envelopes_with_bad_payloads_fail_typed(payload) -> None:
    rt, echo, host = _host()
    env = Envelope(PEER.address, echo.address, Ping.schema_digest(), payload, 1)
    env.signature = PEER.sign_digest(env.signing_bytes())
    host.deliver(env, now=rt.now(), remote=True)
    assert echo.seen in ([], [1]) and (echo.seen or host.inbox.rejected or host.errors)
