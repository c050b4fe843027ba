"""The agent model: every rejection at the inbox, protocols and declared replies, intervals,
async handlers, storage, broadcast, and the LocalRuntime's seeded links and message-log hash."""

from __future__ import annotations

import asyncio

import pytest

from agora.agents import Agent, Context, Envelope, Identity, LocalRuntime, Message, on_message
from agora.agents.agent import on_interval
from agora.agents.errors import Rejected
from agora.agents.inbox import Quota
from agora.agents.protocol import Protocol
from agora.agents.runtime import Link
from agora.agents.storage import Storage, StorageError
from agora.chain import MemoryLedger


class Ping(Message):
    n: int
    text: str = ""


class Pong(Message):
    n: int


class Other(Message):
    pass


class Echo(Agent):
    """Answers Ping with Pong; counts what it handled."""

    def __init__(self, name: str, seed: int | str = 0) -> None:
        super().__init__(name, Identity.from_seed(seed, name))
        self.pings: list[int] = []
        self.pongs: list[int] = []

    @on_message(Ping, replies={Pong})
    def ping(self, ctx: Context, sender: str, msg: Ping) -> None:
        self.pings.append(msg.n)
        ctx.send(sender, Pong(n=msg.n) if msg.n >= 0 else Other())  # a negative ping: an undeclared reply

    @on_message(Pong)
    def pong(self, ctx: Context, sender: str, msg: Pong) -> None:
        self.pongs.append(msg.n)


def _pair(**runtime) -> tuple[LocalRuntime, Echo, Echo]:
    rt = LocalRuntime(MemoryLedger(), **runtime)
    a, b = Echo("a"), Echo("b")
    rt.add(a)
    rt.add(b)
    rt.start()
    return rt, a, b


def _inject(rt: LocalRuntime, env: Envelope) -> None:
    rt._push(rt.now(), env)
    rt.run()


def test_every_rejection_has_its_own_error_and_the_agent_runs_on() -> None:
    rt, a, b = _pair(quota=Quota(rate=1.0, burst=2, max_payload=200))
    mallory = Identity.from_seed(0, "mallory")
    good = Envelope.seal(a.identity, b.address, Ping(n=1), nonce=100, expires=rt.now() + 60)
    cases = {
        "BadSignature": Envelope.seal(mallory, b.address, Ping(n=2), nonce=101).replace(sender=a.address),
        "ExpiredMessage": Envelope.seal(a.identity, b.address, Ping(n=3), nonce=102, expires=rt.now() - 1),
        "UnknownMessage": Envelope.seal(a.identity, b.address, Message(), nonce=103),
        "PayloadTooLarge": Envelope.seal(a.identity, b.address, Ping(n=4, text="x" * 500), nonce=104),
        "BadEnvelope": Envelope.seal(a.identity, b.address, Ping(n=5), nonce=105).replace(nonce="105"),
    }
    _inject(rt, good)
    _inject(rt, good)  # the same envelope again: a replay
    for env in cases.values():
        if env.nonce == "105":
            b_host = rt._hosts[b.address]
            b_host.deliver(env, remote=True)
        else:
            _inject(rt, env)
    for n in range(3):  # rate 1/s, burst 2: the good ping took one token, 10 the other; 11 and 12 wait
        _inject(rt, Envelope.seal(a.identity, b.address, Ping(n=10 + n), nonce=200 + n))
    refused = rt.rejections()["b"]
    assert refused == {**{k: 1 for k in cases}, "ReplayedMessage": 1, "RateLimited": 2}
    assert b.pings == [1, 10]  # only the good ones...
    rt.clock += 5.0  # ...and after the bucket refills, b takes messages again
    _inject(rt, Envelope.seal(a.identity, b.address, Ping(n=20), nonce=300))
    assert b.pings[-1] == 20


def test_replay_window_accepts_late_arrivals_once() -> None:
    rt, a, b = _pair()
    host = rt._hosts[b.address]
    for nonce in (5, 3, 4):  # out of order, each once: fine
        host.deliver(Envelope.seal(a.identity, b.address, Ping(n=nonce), nonce=nonce), now=rt.now())
    host.deliver(Envelope.seal(a.identity, b.address, Ping(n=99), nonce=3), now=rt.now())
    far_ahead = host.inbox.quota.window + 10
    host.deliver(Envelope.seal(a.identity, b.address, Ping(n=far_ahead), nonce=far_ahead), now=rt.now())
    host.deliver(Envelope.seal(a.identity, b.address, Ping(n=1), nonce=1), now=rt.now())  # fell out of the window
    assert b.pings == [5, 3, 4, far_ahead]
    assert host.inbox.rejected == {"ReplayedMessage": 2}


def test_undeclared_reply_is_refused_and_logged() -> None:
    rt, a, b = _pair()
    rt._hosts[a.address].ctx.send(b.address, Ping(n=-1))
    rt.run()
    assert a.pongs == [] and any("UndeclaredReply" in e for e in rt.errors()["b"])


# -- protocols -------------------------------------------------------------------------------
greeting = Protocol("greeting", version="1")


@greeting.on_message(Ping, replies={Pong})
def _greet(ctx: Context, sender: str, msg: Ping) -> None:
    ctx.storage.set("greeted", ctx.storage.get("greeted", 0) + 1)
    ctx.send(sender, Pong(n=msg.n * 2))


class Greeter(Agent):
    protocols = (greeting,)


class Caller(Agent):
    def __init__(self, name: str, target: str) -> None:
        super().__init__(name, Identity.from_seed(0, name))
        self.target, self.got, self.ticks = target, [], []

    def on_start(self, ctx: Context) -> None:
        ctx.broadcast(Ping(n=21), to=[self.target, self.address])  # never to itself

    @on_message(Pong)
    async def pong(self, ctx: Context, sender: str, msg: Pong) -> None:
        await asyncio.sleep(0)  # an async handler: the runtime drives it
        self.got.append(msg.n)

    @on_interval(10.0)
    def tick(self, ctx: Context) -> None:
        self.ticks.append(ctx.now())

    def on_stop(self, ctx: Context) -> None:
        ctx.storage.set("stopped", True)


def test_protocols_intervals_async_handlers_and_hooks() -> None:
    rt = LocalRuntime(MemoryLedger())
    greeter = Greeter("g", Identity.from_seed(0, "g"))
    caller = Caller("c", greeter.address)
    rt.add(greeter)
    rt.add(caller)
    start = rt.now()
    rt.start()
    rt.run(timeout=35.0)
    assert caller.got == [42]
    assert caller.ticks == [start + 10, start + 20, start + 30]
    assert rt._hosts[greeter.address].ctx.storage.get("greeted") == 1
    assert Greeter.protocol_digests() == {"greeting": greeting.digest}
    assert "Caller" in Caller.protocol_digests()
    rt.shutdown()
    assert rt._hosts[caller.address].ctx.storage.get("stopped") is True


def test_protocol_digest_changes_with_its_messages() -> None:
    one, two = Protocol("p"), Protocol("p")
    one.on_message(Ping, replies={Pong})(lambda ctx, s, m: None)
    two.on_message(Ping, replies={Pong, Other})(lambda ctx, s, m: None)
    assert one.digest != two.digest and len(one.digest) == 64
    with pytest.raises(Exception, match="already handles"):
        one.on_message(Ping)(lambda ctx, s, m: None)


def test_storage_keeps_json_and_snapshots() -> None:
    store = Storage({"a": [1, 2]})
    value = {"x": 1}
    store.set("b", value)
    value["x"] = 2  # later changes do not leak in
    assert store.get("b") == {"x": 1} and list(store) == ["a", "b"]
    with pytest.raises(StorageError, match="not JSON"):
        store.set("c", object())
    snap = store.snapshot()
    assert snap["version"] == 1 and Storage.restore(snap).get("a") == [1, 2]
    with pytest.raises(StorageError, match="version"):
        Storage.restore({"version": 99, "data": {}})


# -- the LocalRuntime's links and log ----------------------------------------------------------
def _chatter(seed: int, link: Link) -> tuple[str, list[int], int]:
    rt = LocalRuntime(MemoryLedger(), seed=seed, sign=False, link=link)
    agents = [Echo(f"e{i}", seed) for i in range(6)]
    for agent in agents:
        rt.add(agent)
    rt.start()
    for i, agent in enumerate(agents):
        for n in range(50):
            rt._hosts[agent.address].ctx.send(agents[(i + 1) % 6].address, Ping(n=n))
    rt.run()
    return rt.log_hash(), agents[0].pongs, rt.lost


def test_same_seed_same_log_and_links_are_seeded() -> None:
    noisy = Link(latency=0.01, jitter=0.05, loss=0.2)
    first, again, other = _chatter(1, noisy), _chatter(1, noisy), _chatter(2, noisy)
    assert first == again  # identical message log, deliveries and losses
    assert first[0] != other[0]
    lost = first[2]
    assert 80 < lost < 140  # 20% of 300 pings (about 60), then of the 240 pongs (about 48)
    assert first[1] != sorted(first[1])  # jitter reorders arrivals
    quiet = _chatter(1, Link())
    assert quiet[2] == 0 and quiet[1] == list(range(50))


def test_replay_state_stays_small_whatever_the_nonces() -> None:
    """A sender's replay state is one int and a window-bit mask: a nonce far ahead neither
    allocates a huge number nor lets older nonces back in."""
    rt, a, b = _pair()
    host = rt._hosts[b.address]
    window = host.inbox.quota.window
    host.deliver(Envelope.seal(a.identity, b.address, Ping(n=1), nonce=1), now=rt.now())
    host.deliver(Envelope.seal(a.identity, b.address, Ping(n=2), nonce=10**12), now=rt.now())
    assert host.inbox._holes[a.address].bit_length() <= window
    host.deliver(Envelope.seal(a.identity, b.address, Ping(n=3), nonce=10**12 - 5), now=rt.now())  # late, inside the window
    host.deliver(Envelope.seal(a.identity, b.address, Ping(n=4), nonce=2), now=rt.now())  # far behind: refused
    assert b.pings == [1, 2, 3] and host.inbox.rejected == {"ReplayedMessage": 1}


def test_replay_window_against_a_set_of_every_nonce() -> None:
    """The holes bitmap agrees with the plain model (a set of every nonce accepted, refusing
    what was seen or fell out of the window) on random arrival orders, duplicates included."""
    import random

    from agora.agents.inbox import Inbox, Quota

    sender = Identity.from_seed("w", "s")
    for seed in range(20):
        rng = random.Random(seed)
        window = 16
        inbox = Inbox("0x" + "00" * 20, {Ping.schema_digest(): Ping}, Quota(window=window), verify=False)
        nonces = [rng.randrange(0, 60) for _ in range(150)] + list(range(60, 40, -1))
        seen: set[int] = set()
        for nonce in nonces:
            high = max(seen, default=-1)
            expected = nonce not in seen and not (nonce <= high and high - nonce >= window)
            envelope = Envelope.seal(sender, inbox.owner, Ping(n=nonce), nonce=nonce, sign=False)
            try:
                inbox.admit(envelope, 0.0)
                accepted = True
            except Rejected:
                accepted = False
            assert accepted == expected, (seed, nonce)
            if accepted:
                seen.add(nonce)
