"""Reputation: ratings from verified and failed deliveries, one trust graph for every market.

Each rating is an edge in a networkx trust graph from the rater (a buyer) to the rated (a
provider, model owner or data owner) whatever the market was, so verified work in the compute
market counts when the same agent sells model calls. Global trust is computed by EigenTrust
(Kamvar, Schlosser & Garcia-Molina 2003) or personalized PageRank, both anchored on pre-trusted
agents: a random walk that restarts at them only reaches an agent through ratings from agents it
already reached. That is what defeats a sybil ring: fake accounts rating each other thousands of
times gain nothing unless someone trusted rated them (tested in tests/economy/test_reputation.py).
Ratings are weighted by the value of the deal (``amount``), so trust costs real money to fake.

``choose`` is how buyers use it: price against trust.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import networkx as nx
import numpy as np

from agora.economy.errors import InvalidBid

MarketKind = Literal["compute", "model", "data", "any"]
"""Which market a rating came from (one graph holds them all)."""


class ReputationGraph:
    def __init__(self, pretrusted: Iterable[str] = ()) -> None:
        self.graph: nx.DiGraph[str] = nx.DiGraph()
        self.pretrusted = set(pretrusted)
        self.outcomes: dict[str, dict[str, int]] = {}  # ratee -> {"verified": n, "failed": n}

    def record(self, rater: str, ratee: str, verified: bool, amount: int = 1, market: MarketKind = "any") -> None:
        """A delivery ``rater`` bought from ``ratee`` was verified (True) or failed (False)."""
        if not rater or not ratee or rater == ratee:
            raise InvalidBid(f"a rating needs two different agents, got {rater!r} -> {ratee!r}")
        if type(amount) is not int or amount <= 0:
            raise InvalidBid(f"a rating's amount must be a positive int, got {amount!r}")
        if not self.graph.has_edge(rater, ratee):
            self.graph.add_edge(rater, ratee, good=0, bad=0, markets=set())
        edge = self.graph[rater][ratee]
        edge["good" if verified else "bad"] += amount
        edge["markets"].add(market)
        tally = self.outcomes.setdefault(ratee, {"verified": 0, "failed": 0})
        tally["verified" if verified else "failed"] += 1

    def local_trust(self) -> nx.DiGraph[str]:
        """EigenTrust's normalized local trust: c_ij = max(good - bad, 0) / sum over j."""
        g: nx.DiGraph[str] = nx.DiGraph()
        g.add_nodes_from(self.graph)
        for i in self.graph:
            scores = {j: max(d["good"] - d["bad"], 0) for j, d in self.graph[i].items()}
            total = sum(scores.values())
            for j, s in scores.items():
                if s > 0:
                    g.add_edge(i, j, weight=s / total)
        return g

    def eigentrust(self, alpha: float = 0.15, iterations: int = 100, tol: float = 1e-12) -> dict[str, float]:
        """Global trust t = (1 - alpha) C^T t + alpha p, p uniform over the pre-trusted agents
        (over everyone when there are none, which leaves no sybil defence). Sums to 1."""
        nodes = list(self.graph)
        if not nodes:
            return {}
        index = {n: k for k, n in enumerate(nodes)}
        c = nx.to_numpy_array(self.local_trust(), nodelist=nodes, weight="weight")
        anchors = [index[n] for n in self.pretrusted if n in index] or list(range(len(nodes)))
        p = np.zeros(len(nodes))
        p[anchors] = 1.0 / len(anchors)
        t = p.copy()
        for _ in range(iterations):
            flow = c.T @ t
            flow += p * (t[c.sum(axis=1) == 0].sum())  # agents who rated nobody defer to the anchors
            new = (1 - alpha) * flow + alpha * p
            if np.abs(new - t).sum() < tol:
                t = new
                break
            t = new
        return {n: float(t[index[n]]) for n in nodes}

    def pagerank(self, personal: str | Iterable[str] | None = None, alpha: float = 0.85) -> dict[str, float]:
        """Personalized PageRank over the local-trust graph, restarting at ``personal`` (one agent
        or several: trust as they see it), or at the pre-trusted agents by default."""
        g = self.local_trust()
        if g.number_of_nodes() == 0:
            return {}
        seeds = {personal} if isinstance(personal, str) else set(personal or self.pretrusted)
        seeds &= set(g)
        restart = {n: (1.0 if n in seeds else 0.0) for n in g} if seeds else None
        # start the walk at the seeds: starting uniform would leave unreachable agents a residue
        ranks: dict[str, float] = nx.pagerank(g, alpha=alpha, personalization=restart, dangling=restart, nstart=restart, weight="weight")
        return ranks

    def scores(self, viewer: str | None = None) -> dict[str, float]:
        """The one reputation rule every market reads: each rated agent's trust in [0, 1], 1.0
        for the most trusted. Personalized PageRank restarting at ``viewer`` and the pre-trusted
        agents once one of them has rated anyone; EigenTrust over everyone until then."""
        seeds = set(self.pretrusted) | ({viewer} if viewer else set())
        if any(self.graph.has_node(s) and self.graph.out_degree(s) for s in seeds):
            raw = self.pagerank(personal=seeds)
        else:
            raw = self.eigentrust()
        top = max(raw.values(), default=0.0)
        return {a: (v / top if top > 0 else 0.0) for a, v in raw.items()}

    def success_rate(self, agent: str) -> float | None:
        """Verified over all rated deliveries of ``agent`` (None when it has none)."""
        tally = self.outcomes.get(agent)
        if not tally:
            return None
        return tally["verified"] / (tally["verified"] + tally["failed"])


def risk_adjusted(price: int, trust: float, risk_weight: float) -> float:
    """What a bid costs once its risk is priced in: price * (1 + risk_weight * (1 - trust)),
    ``trust`` being relative (1.0 for the most trusted bidder, 0.0 for an unknown one)."""
    return price * (1.0 + risk_weight * (1.0 - trust))


def relative(trust: Mapping[str, float], among: Iterable[str]) -> dict[str, float]:
    """Trust scaled so the most trusted of ``among`` has 1.0 (everyone 1.0 when none is known,
    so price alone decides)."""
    names = list(among)
    top = max((trust.get(n, 0.0) for n in names), default=0.0)
    return {n: (trust.get(n, 0.0) / top if top > 0 else 1.0) for n in names}


def choose(bids: Sequence[tuple[str, int]], trust: Mapping[str, float], risk_weight: float = 1.0) -> str:
    """The bidder with the lowest risk-adjusted price (see ``risk_adjusted``; trust is scaled by
    ``relative``). With no trust known, the lowest price wins; ties go to the lower id, so the
    choice never depends on arrival order."""
    if not bids:
        raise InvalidBid("no bids to choose from")
    if risk_weight < 0:
        raise InvalidBid(f"risk_weight must be >= 0, got {risk_weight}")
    rel = relative(trust, (who for who, _ in bids))
    return min(bids, key=lambda b: (risk_adjusted(b[1], rel[b[0]], risk_weight), b[0]))[0]
