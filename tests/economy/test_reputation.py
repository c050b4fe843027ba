"""Reputation: trust from verified deliveries, resistant to a ring of fake accounts."""

from __future__ import annotations

import random

import pytest

from agora.economy import InvalidBid
from agora.economy.reputation import ReputationGraph, choose


def _market(seed: int = 0) -> ReputationGraph:
    """Twenty honest buyers (two of them the pre-trusted platform verifiers) buy from eight
    providers; providers p0..p3 deliver well, p4..p7 fail most of the time."""
    rng = random.Random(seed)
    graph = ReputationGraph(pretrusted=["b0", "b1"])
    buyers = [f"b{i}" for i in range(20)]
    for _ in range(600):
        buyer, k = rng.choice(buyers), rng.randrange(8)
        ok = rng.random() < (0.95 if k < 4 else 0.3)
        graph.record(buyer, f"p{k}", verified=ok, amount=rng.randint(50, 150), market=rng.choice(["compute", "model", "data"]))
    return graph


def test_verified_work_earns_more_trust_than_failed_work() -> None:
    graph = _market()
    for trust in (graph.eigentrust(), graph.pagerank()):
        good = min(trust[f"p{k}"] for k in range(4))
        bad = max(trust[f"p{k}"] for k in range(4, 8))
        assert good > 2 * bad
    assert graph.success_rate("p0") > 0.85 and graph.success_rate("nobody") is None
    assert abs(sum(graph.eigentrust().values()) - 1.0) < 1e-9


def test_a_sybil_ring_gains_nothing_by_rating_itself() -> None:
    graph = _market()
    ring = [f"sybil{i}" for i in range(30)]
    for _ in range(40):  # 30 fake accounts, 36,000 glowing ratings among themselves
        for a in ring:
            for b in ring:
                if a != b:
                    graph.record(a, b, verified=True, amount=1000)
    graph.record("sybil0", "p0", verified=True)  # and a few rating an honest provider, to look normal
    for trust in (graph.eigentrust(), graph.pagerank(), graph.pagerank(personal="b7")):
        assert sum(trust[s] for s in ring) < 1e-6
        assert min(trust[f"p{k}"] for k in range(4)) > 0.01
    naive = graph.pagerank(personal=ring[0])  # trust as the ring sees itself: that is where it lives
    assert sum(naive[s] for s in ring) > 0.5


def test_choose_weighs_price_against_trust() -> None:
    bids = [("cheap", 70), ("trusted", 90), ("mid", 80)]
    assert choose(bids, {}) == "cheap"  # nothing known: price decides
    trust = {"trusted": 0.3, "mid": 0.15, "cheap": 0.0}
    assert choose(bids, trust, risk_weight=1.0) == "trusted"  # 70 * 2 > 80 * 1.5 > 90
    assert choose(bids, trust, risk_weight=0.0) == "cheap"
    assert choose([("b", 50), ("a", 50)], {}) == "a"  # ties: lower id
    with pytest.raises(InvalidBid):
        choose([], {})


def test_bad_ratings_are_refused() -> None:
    graph = ReputationGraph()
    for bad in (("a", "a", True, 1), ("", "b", True, 1), ("a", "b", True, 0), ("a", "b", False, 1.5)):
        with pytest.raises(InvalidBid):
            graph.record(*bad)
    assert graph.graph.number_of_edges() == 0 and graph.eigentrust() == {}
