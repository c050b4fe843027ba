"""Issue 18, hole 5: internal messages are never admitted from another sender.

An agent's timers to itself (interval ticks, ``ctx.schedule``, the completion of
``ctx.run_off_mailbox`` work) used to pass the same inbox as any peer's message, so a stranger
with a valid key of its own could fire another agent's interval handlers at will (each forged tick
also armed one more timer that never stops), abort ``LocalRuntime.run`` with an IndexError (a tick
index out of range), or fail a Ray shard's delivery call. Here every internal message type is sent
by a stranger, through the public send path of its context and through the runtime's delivery, on
both runtimes: each is refused as ``InternalMessage``, counted, and changes nothing.
"""

from __future__ import annotations

import importlib
import time

import pytest

from agora.agents import Agent, Context, Envelope, Identity, LocalRuntime, Message, on_message
from agora.agents.agent import on_interval
from agora.agents.host import IntervalTick, _types_of
from agora.agents.inbox import Inbox, Quota
from agora.agents.runtime import audit_traffic
from agora.chain import MemoryLedger

PERIOD = 1.0  # the victim's interval (virtual seconds on LocalRuntime, wall seconds on Ray)
FORGED_TICKS = 20


class _Alarm(Message):
    """Private to this module: the victim schedules it to itself."""

    n: int


class Ping(Message):
    n: int = 0


class Clock(Agent):
    """The victim: one interval handler, one scheduled self-message, one public message."""

    def __init__(self, name: str, identity: Identity | None = None) -> None:
        super().__init__(name, identity or Identity.from_seed("hole5", name))
        self.beats = self.alarms = self.pings = 0

    def on_start(self, ctx: Context) -> None:
        ctx.schedule(PERIOD / 2, _Alarm(n=1))

    @on_interval(PERIOD)
    def beat(self, ctx: Context) -> None:
        self.beats += 1

    @on_message(_Alarm)
    def alarm(self, ctx: Context, sender: str, msg: _Alarm) -> None:
        self.alarms += 1

    @on_message(Ping)
    def ping(self, ctx: Context, sender: str, msg: Ping) -> None:
        self.pings += 1


def _forgeries() -> list[Message]:
    """What a stranger sends: ticks for the victim's interval, one past its intervals, its alarm."""
    return [IntervalTick(index=0)] * FORGED_TICKS + [IntervalTick(index=5), IntervalTick(index=-1), _Alarm(n=99)]


class Mallory(Agent):
    """A stranger with a valid key of its own: at start it sends the victim every forgery through
    its context's public send path, then one ordinary Ping (which must still get through)."""

    def __init__(self, name: str, victim: str, identity: Identity | None = None) -> None:
        super().__init__(name, identity or Identity.from_seed("hole5", name))
        self.victim = victim

    def on_start(self, ctx: Context) -> None:
        for message in _forgeries():
            ctx.send(self.victim, message)
        ctx.send(self.victim, Ping(n=1))


def _sealed(stranger: Identity, victim: str, first_nonce: int, expires: float) -> list[Envelope]:
    """The same forgeries sealed by hand with the stranger's own key (the runtime's delivery path)."""
    return [Envelope.seal(stranger, victim, m, nonce=first_nonce + i, expires=expires) for i, m in enumerate(_forgeries())]


REFUSED = len(_forgeries())


@pytest.mark.parametrize("path", ["context", "runtime"])
def test_local_runtime_refuses_a_strangers_internal_messages(path: str) -> None:
    rt = LocalRuntime(MemoryLedger(), sign=True)
    clock = Clock("clock")
    rt.add(clock)
    if path == "context":
        rt.add(Mallory("mallory", clock.address))
    rt.start()
    if path == "runtime":
        stranger = Identity.from_seed("hole5", "stranger")
        for envelope in _sealed(stranger, clock.address, 0, rt.now() + 60):
            rt._push(rt.now(), envelope)  # the queue every delivery goes through
        rt._push(rt.now(), Envelope.seal(stranger, clock.address, Ping(n=1), nonce=REFUSED, expires=rt.now() + 60))
    assert rt.run(timeout=3.5 * PERIOD) is False  # ran to its time limit: not aborted, timers still armed
    assert (clock.beats, clock.alarms, clock.pings) == (3, 1, 1)  # exactly as if no stranger had spoken
    assert rt.rejections() == {"clock": {"InternalMessage": REFUSED}}
    host = rt._hosts[clock.address]
    assert [type(env._message).__name__ for _, env in host.timers.values()] == ["IntervalTick"]  # no timer added
    if path == "context":
        assert audit_traffic(rt.traffic()).exact  # every forgery counted as refused, once


def test_a_copy_of_the_agents_own_armed_timer_is_not_its_timer() -> None:
    """The scheduling path is marked by identity (the envelope object the host armed), not by
    sender and nonce: a copy of an armed tick, validly signed by the victim itself (a snapshot
    read back, an envelope that crossed a network), is refused and leaves the real one armed."""
    import pickle

    rt = LocalRuntime(MemoryLedger(), sign=True)
    clock = Clock("clock")
    rt.add(clock)
    rt.start()
    host = rt._hosts[clock.address]
    ((nonce, (_, armed)),) = [(n, t) for n, t in host.timers.items() if type(t[1]._message) is IntervalTick]
    rt._push(rt.now(), pickle.loads(pickle.dumps(armed)))
    assert rt.run(timeout=3.5 * PERIOD) is False
    assert (clock.beats, clock.alarms) == (3, 1)
    assert rt.rejections() == {"clock": {"InternalMessage": 1}}


def _refused_at_the_inbox(case: tuple) -> None:
    """A stranger's validly signed, well-formed ``type_name`` at the inbox of ``agent_name``."""
    from agora.agents.inbox import InternalMessage

    (agent_module, message_module), agent_name, type_name = case
    agent_cls = getattr(importlib.import_module(agent_module), agent_name)
    message_cls = getattr(importlib.import_module(message_module), type_name)
    owner = Identity.from_seed("hole5", agent_name)
    inbox = Inbox(owner.address, _types_of(agent_cls), Quota(), verify=True)
    assert message_cls.schema_digest() in inbox.types, f"{agent_name} does not handle {type_name}"
    fields = {name: {int: 1, str: "x"}[f.annotation] for name, f in message_cls.model_fields.items() if f.is_required()}
    envelope = Envelope.seal(Identity.from_seed("hole5", "stranger"), owner.address, message_cls(**fields), nonce=1)
    with pytest.raises(InternalMessage, match=type_name):
        inbox.admit(envelope, 0.0)
    assert inbox._high == {}  # nothing remembered of it


# (agent module, message module), agent class, internal message type: every one in the code base
INTERNAL = [
    (("tests.security.test_internal_messages", "agora.agents.host"), "Clock", "IntervalTick"),
    (("tests.security.test_internal_messages", "tests.security.test_internal_messages"), "Clock", "_Alarm"),
    (("agora.agents.roles.buyer", "agora.agents.roles.buyer"), "Buyer", "_OpenRequest"),
    (("agora.agents.roles.serving", "agora.agents.roles.serving"), "ModelServer", "_EscrowCheck"),
    (("agora.agents.roles.trader", "agora.agents.roles.trader"), "Trader", "_Period"),
    (("agora.agents.roles.cohort", "agora.agents.roles.cohort"), "TraderCohort", "_Period"),
    (("agora.agents.roles.exchange", "agora.agents.roles.exchange"), "Exchange", "_Tick"),
    (("agora.simulations.director", "agora.simulations.director"), "Director", "_Fire"),
    (("agora.simulations.director", "agora.simulations.director"), "Director", "_End"),
]

# the deal protocol's timers and off-mailbox completion (agents/deal_protocol.py marks them)
DEAL_TIMERS = [
    (("agora.agents.roles.buyer", "agora.agents.deal_protocol"), "Buyer", "ProposalsDue"),
    (("agora.agents.roles.buyer", "agora.agents.deal_protocol"), "Buyer", "DeadlineDue"),
    (("agora.agents.roles.provider", "agora.agents.deal_protocol"), "ComputeProvider", "PaymentDue"),
    (("agora.agents.roles.provider", "agora.agents.deal_protocol"), "ComputeProvider", "JobDone"),
]


@pytest.mark.parametrize("case", INTERNAL, ids=[f"{c[1]}.{c[2]}" for c in INTERNAL])
def test_every_internal_message_type_is_refused_from_a_stranger(case: tuple) -> None:
    """The audit: each internal type the code base schedules to itself, at the inbox of the
    agent class that handles it, sent by a stranger with a valid signature."""
    _refused_at_the_inbox(case)


@pytest.mark.parametrize("case", DEAL_TIMERS, ids=[f"{c[1]}.{c[2]}" for c in DEAL_TIMERS])
def test_the_deal_protocols_timers_are_refused_from_a_stranger(case: tuple) -> None:
    _refused_at_the_inbox(case)


def test_a_private_message_class_is_internal_and_a_public_one_is_not() -> None:
    assert _Alarm.internal and IntervalTick.internal
    assert not Ping.internal and not Message.internal


@pytest.mark.ray
def test_ray_runtime_refuses_a_strangers_internal_messages(ray_cluster) -> None:
    """Strangers in another shard (a signed batch), in the victim's own shard (no Ray call at
    all) and injected by the driver (per-envelope signatures): every forgery refused and counted,
    the victim's timers as they were, the shard still delivering."""
    from agora.agents.ray import RayRuntime

    rt = RayRuntime(shards=2, seed="hole5")
    try:
        clock = Clock("clock")
        rt.add(clock)  # shard 0
        rt.add(Mallory("mallory-far", clock.address))  # shard 1
        rt.add(Mallory("mallory-near", clock.address))  # shard 0, beside its victim
        rt.start()
        started = time.time()
        stranger = Identity.from_seed("hole5", "stranger")
        rt.send(clock.address, _sealed(stranger, clock.address, 0, time.time() + 60))  # the driver's delivery
        rt.send(clock.address, [Envelope.seal(stranger, clock.address, Ping(n=1), nonce=REFUSED, expires=time.time() + 60)])
        assert rt.run(until=lambda: rt.query(clock.address, "pings") == 3, timeout=60)  # the shard still delivers
        time.sleep(3 * PERIOD)
        beats, alarms = rt.query(clock.address, "beats"), rt.query(clock.address, "alarms")
        assert beats <= (time.time() - started) / PERIOD + 2  # one timer, not twenty more
        assert alarms == 1
        assert rt.rejections() == {"clock": {"InternalMessage": 3 * REFUSED}}
    finally:
        rt.shutdown()
