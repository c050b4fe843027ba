"""Durable shards: a shard killed mid-run is restarted by Ray, rebuilds its agents from its
journal (state, replay windows, timers), gets the calls it was handling again, sends again what
it had sent but nobody acknowledged, and the run ends with every message handled exactly once."""

from __future__ import annotations

import pickle
import time

import pytest

from agora.agents import Agent, Context, Identity, Message, on_interval, on_message
from agora.agents.journal import Journal
from agora.agents.population import Population
from agora.agents.runtime import audit_traffic

pytestmark = [pytest.mark.ray, pytest.mark.chaos]

COUNT = 200


class Seq(Message):
    k: int


class Relay(Agent):
    """Sends 0..count-1 to its peer, one per tick; records what it got and how often."""

    def __init__(self, name: str, identity: Identity, peer: str, count: int = COUNT) -> None:
        super().__init__(name, identity)
        self.peer, self.count, self.next = peer, count, 0
        self.got: dict[str, int] = {}

    @on_interval(0.01)
    def tick(self, ctx: Context) -> None:
        for _ in range(2):
            if self.next < self.count:
                ctx.send(self.peer, Seq(k=self.next))
                self.next += 1

    @on_message(Seq)
    def seq(self, ctx: Context, sender: str, msg: Seq) -> None:
        self.got[str(msg.k)] = self.got.get(str(msg.k), 0) + 1

    def progress(self) -> tuple[int, int, int]:
        """(messages sent, distinct received, most times one was handled)."""
        return self.next, len(self.got), max(self.got.values(), default=0)


def _ring(n: int, seed: str) -> Population:
    names = [f"r{i}" for i in range(n)]
    peers = [Identity.from_seed(seed, names[(i + 1) % n]).address for i in range(n)]
    groups = [{"role": "tests.agents.test_fault_tolerance:Relay", "name": name, "settings": {"peer": peer}} for name, peer in zip(names, peers, strict=False)]
    return Population.parse({"name": "ring", "seed": seed, "agents": groups})


def test_a_killed_shard_comes_back_and_nothing_is_lost_or_handled_twice(ray_cluster, tmp_path) -> None:
    import ray

    from agora.agents.ray import RayRuntime

    rt = RayRuntime(shards=2, durable=str(tmp_path / "journal"), name="ring-ft")
    try:
        names = rt.add_population(_ring(8, "ft"))  # r0, r2, ... in shard 0; r1, r3, ... in shard 1
        rt.start(parallel=True)

        def progress() -> list[tuple[int, int, int]]:
            return [rt.query(address, "progress") for address in names.values()]

        assert rt.run(until=lambda: sum(p[1] for p in progress()) >= 300, timeout=60)
        before = progress()
        assert any(p[0] < COUNT for p in before)  # killed mid-run, not after
        ray.kill(ray.get_actor("ring-ft-shard-1"), no_restart=False)
        assert rt.run(until=lambda: all(p[0] == COUNT and p[1] == COUNT for p in progress()), timeout=120), progress()
        after = progress()
        assert all(p == (COUNT, COUNT, 1) for p in after)  # every message handled, none twice
        stats = rt.stats()
        assert stats[1]["recovered"] == 4 and stats[0]["recovered"] == 0  # shard 1 restarted from its journal
        assert all(s["unacked"] == 0 for s in stats) or rt.run(until=lambda: all(s["unacked"] == 0 for s in rt.stats()), timeout=10)
        audit = audit_traffic(rt.traffic())  # each side's ledger of envelopes, from the journals too
        assert audit.exact and audit.sent == 8 * COUNT and audit.admitted == 8 * COUNT, audit
        assert rt.errors().keys() <= {f"r{i}" for i in range(8)}  # at most refused redeliveries
        for errors in rt.errors().values():
            assert all("ReplayedMessage" in e for e in errors)
    finally:
        rt.shutdown()


def test_journal_drops_a_torn_tail_and_compacts(tmp_path) -> None:
    journal = Journal(tmp_path, min_bytes=2000)
    state = journal.recover()
    assert state.agents == {}
    journal.append({"agents": {"a": b"1"}, "out": [(0, 1, ["e0"])], "meta": {"shards": 2}})
    journal.append({"agents": {"a": b"2", "b": b"1"}, "acked": [0], "out": [(1, 1, ["e1"])]})
    journal.close()
    with open(tmp_path / "journal-0", "ab") as f:  # a record cut off mid-write
        f.write(b"\x50\x00\x00\x00\x00\x00\x00\x00partial")
    again = Journal(tmp_path, min_bytes=2000)
    state = again.recover()
    assert state.agents == {"a": b"2", "b": b"1"} and state.unacked == {1: (1, ["e1"])} and state.meta == {"shards": 2}
    assert state.next_batch == 2 and again.records == 2
    while not again.due():
        again.append({"agents": {"a": b"x" * 500}})
    again.compact({"agents": {"a": b"3", "b": b"1"}, "out": [(1, 1, ["e1"])], "meta": {"shards": 2}})
    again.append({"acked": [1]})
    again.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint", "journal-1"]
    reader = Journal(tmp_path)
    final = reader.recover()
    reader.close()
    assert final.agents == {"a": b"3", "b": b"1"} and final.unacked == {} and final.meta == {"shards": 2}
    assert pickle.loads((tmp_path / "checkpoint").read_bytes())["generation"] == 1


def test_durable_runtime_refuses_agents_it_could_not_rebuild(ray_cluster, tmp_path) -> None:
    from agora.agents.errors import RuntimeFailure
    from agora.agents.ray import RayRuntime

    rt = RayRuntime(shards=1, durable=str(tmp_path))
    try:
        with pytest.raises(RuntimeFailure, match="add_population"):
            rt.add(Relay("loose", Identity.from_seed("x", "loose"), peer=Identity.from_seed("x", "y").address))
        assert time.time() > 0
    finally:
        rt.shutdown()
