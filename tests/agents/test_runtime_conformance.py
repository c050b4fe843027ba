"""One contract, every runtime: the same calls and the same answers on LocalRuntime and RayRuntime.

Callers (the scenario runner, the hosted market, a user's script) never check which runtime they
hold; each test here runs on both, so a runtime that drifts from the interface fails here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agora.agents import Agent, Context, Identity, LocalRuntime, Message, Population, Runtime, RuntimeFailure, on_message
from agora.agents.runtime import audit_traffic
from agora.chain import MemoryLedger

SEED = "conformance"


class Hello(Message):
    n: int


class Greeter(Agent):
    """Says hello to its peer three times at start (once with a number it cannot take), answers
    each hello once, and keeps what it saw."""

    def __init__(self, name: str, identity: Identity, peer: str = "") -> None:
        super().__init__(name, identity)
        self.peer = peer
        self.seen: list[int] = []
        self.stopped = False

    def on_start(self, ctx: Context) -> None:
        if self.peer:
            for n in (1, -1, 2):
                ctx.send(self.peer, Hello(n=n))

    @on_message(Hello)
    def hello(self, ctx: Context, sender: str, msg: Hello) -> None:
        if msg.n < 0:
            raise ValueError("a negative hello")
        self.seen.append(msg.n)
        if msg.n < 10:
            ctx.send(sender, Hello(n=msg.n + 10))

    def count(self) -> int:
        return len(self.seen)


def _agent(name: str, peer: str = "") -> Greeter:
    return Greeter(name, Identity.from_seed(SEED, name), peer)


@pytest.fixture(params=["local", pytest.param("ray", marks=pytest.mark.ray)])
def make(request: pytest.FixtureRequest) -> Iterator[Callable[..., Runtime]]:
    """Builds the runtime under test from a ledger or a ledger factory; shuts down what it built."""
    made: list[Runtime] = []

    def build(ledger: Any = MemoryLedger) -> Runtime:
        if request.param == "local":
            rt: Runtime = LocalRuntime(ledger, seed=SEED)
        else:
            request.getfixturevalue("ray_cluster")
            from agora.agents.ray import RayRuntime

            rt = RayRuntime(ledger, seed=SEED, shards=2)
        made.append(rt)
        return rt

    yield build
    for rt in made:
        rt.shutdown()


@pytest.mark.parametrize("given", ["instance", "factory"])
def test_a_ledger_or_a_factory_of_one(make: Callable[..., Runtime], given: str) -> None:
    ledger = MemoryLedger() if given == "instance" else MemoryLedger
    rt = make(ledger)
    rt.ledger.mint("0x" + "11" * 20, 5)
    assert rt.ledger.balance_of("0x" + "11" * 20) == 5
    assert rt.ledger.is_conserved()


def test_something_else_as_a_ledger_is_refused(make: Callable[..., Runtime]) -> None:
    with pytest.raises(RuntimeFailure, match="Ledger or a factory"):
        make("memory")


def test_agents_talk_fail_alone_and_are_read_the_same_way(make: Callable[..., Runtime]) -> None:
    rt = make()
    b = _agent("b")
    a = _agent("a", peer=b.address)
    assert rt.add(b) == b.address
    assert rt.add(a, key_seed=SEED) == a.address  # a key from the seed and the name: every runtime takes it
    with pytest.raises(RuntimeFailure, match="already hosted"):
        rt.add(b)
    before = rt.now()
    rt.start()
    assert rt.run(until=lambda: rt.query(a.address, "count") == 2, timeout=60)
    assert rt.query(b.address, "seen") == [1, 2]
    assert rt.query(a.address, "seen") == [11, 12]
    assert "a negative hello" in rt.errors()["b"][0]  # the handler failed; the agent goes on
    assert rt.rejections() == {}
    assert audit_traffic(rt.traffic()).exact
    rt.advance(rt.now() + 0.2)
    assert rt.now() >= before + 0.2


def test_a_population_is_hosted_by_name_in_file_order(make: Callable[..., Runtime]) -> None:
    rt = make()
    names = ["p0", "p1", "p2"]
    peers = [Identity.from_seed(SEED, names[(i + 1) % 3]).address for i in range(3)]
    role = f"{__name__}:Greeter"
    population = Population.parse(
        {"name": "trio", "seed": SEED, "agents": [{"role": role, "name": n, "settings": {"peer": p}} for n, p in zip(names, peers, strict=False)]}
    )
    hosted = rt.add_population(population)
    assert list(hosted) == names
    assert hosted == {n: Identity.from_seed(SEED, n).address for n in names}
    rt.start()
    assert rt.run(until=lambda: all(rt.query(a, "count") == 4 for a in hosted.values()), timeout=60)


def test_the_runtime_says_how_it_runs() -> None:
    """``driven`` is declared, so callers pace a runtime without asking for its type."""
    from agora.agents.ray import RayRuntime

    assert LocalRuntime.driven is True and RayRuntime.driven is False
    assert (
        not hasattr(Runtime, "__abstractmethods__") or {"add", "start", "run", "now", "query", "errors", "rejections", "traffic"} <= Runtime.__abstractmethods__
    )
