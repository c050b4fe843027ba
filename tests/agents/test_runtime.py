"""The runtime contract: ordered delivery, timers on the virtual clock, isolation of failures,
forged envelopes refused. Runs on LocalRuntime, and the same agents on RayRuntime."""

from __future__ import annotations

import pytest

from agora.agents import Agent, Context, Envelope, Identity, LocalRuntime, Message, on_message
from agora.chain import MemoryLedger


class Ping(Message):
    n: int


class Tick(Message):
    pass


class Counter(Agent):
    """Answers pings, counts them, fails on n < 0, and ticks on a timer."""

    def __init__(self, name: str, identity: Identity, peer: str | None = None) -> None:
        super().__init__(name, identity)
        self.peer = peer
        self.seen: list[int] = []
        self.ticks: list[float] = []

    def on_start(self, ctx: Context) -> None:
        if self.peer:
            for n in (1, -1, 2):
                ctx.send(self.peer, Ping(n=n))
            ctx.schedule(30.0, Tick())

    @on_message(Ping)
    def ping(self, ctx: Context, sender: str, msg: Ping) -> None:
        if msg.n < 0:
            raise ValueError("negative ping")
        self.seen.append(msg.n)
        if msg.n < 4:
            ctx.send(sender, Ping(n=msg.n + 10))

    @on_message(Tick)
    def tick(self, ctx: Context, sender: str, msg: Tick) -> None:
        self.ticks.append(ctx.now())

    def count(self) -> int:
        return len(self.seen)


def _pair(seed: int = 0) -> tuple[Counter, Counter]:
    b = Counter("b", Identity.from_seed(seed, "b"))
    a = Counter("a", Identity.from_seed(seed, "a"), peer=b.address)
    return a, b


def test_local_delivery_timers_and_failure_isolation() -> None:
    ledger = MemoryLedger()
    rt = LocalRuntime(ledger)
    a, b = _pair()
    rt.add(b)
    rt.add(a)
    start = rt.now()
    rt.start()
    assert rt.run()
    assert b.seen == [1, 2]  # the failing ping in between did not stop b
    assert a.seen == [11, 12]
    assert a.ticks == [start + 30.0]  # the timer fired on the virtual clock
    assert ledger.now() >= start + 30  # and the ledger followed it
    assert list(rt.errors()) == ["b"] and "negative ping" in rt.errors()["b"][0]


def test_forged_envelope_is_refused_and_logged() -> None:
    rt = LocalRuntime(MemoryLedger())
    a, b = _pair()
    rt.add(a)
    rt.add(b)
    mallory = Identity.from_seed(0, "mallory")
    forged = Envelope.seal(mallory, b.address, Ping(n=7), nonce=0).replace(sender=a.address)
    rt._push(rt.now(), forged)
    rt.run()
    assert 7 not in b.seen
    assert any("BadSignature" in e for e in rt.errors()["b"])


def test_hosting_twice_is_refused() -> None:
    from agora.agents import RuntimeFailure

    rt = LocalRuntime(MemoryLedger())
    a, _ = _pair()
    rt.add(a)
    with pytest.raises(RuntimeFailure):
        rt.add(a)


@pytest.mark.ray
def test_same_agents_run_as_ray_actors(ray_cluster) -> None:
    from agora.agents.ray import RayRuntime

    rt = RayRuntime()
    try:
        a, b = _pair()
        rt.add(b)
        rt.add(a)
        rt.start()
        assert rt.run(until=lambda: rt.query(a.address, "count") == 2, timeout=60)
        assert rt.query(b.address, "seen") == [1, 2]
        assert "negative ping" in rt.errors()["b"][0]
    finally:
        rt.shutdown()


def test_ray_runtime_needs_ray_started_by_the_caller(tmp_path) -> None:
    """Library code never calls ray.init(): without a running Ray, a clear error (run outside
    the checkout, so only the installed ``agora`` can answer)."""
    import subprocess
    import sys

    code = "from agora.agents.ray import RayRuntime\ntry:\n    RayRuntime()\nexcept Exception as e:\n    print(type(e).__name__, e)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path).stdout
    assert out.startswith("RuntimeFailure") and "ray.init" in out


class BrokenStart(Agent):
    def on_start(self, ctx: Context) -> None:
        raise ValueError("cannot publish")


def test_failed_start_is_not_silent() -> None:
    rt = LocalRuntime(MemoryLedger())
    rt.add(BrokenStart("x", Identity.from_seed(0, "x")))
    with pytest.raises(ValueError, match="cannot publish"):
        rt.start()
