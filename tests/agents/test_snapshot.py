"""Snapshots: agents written to a folder and hosted again, as they were, without their keys."""

from __future__ import annotations

import pickle

import pytest

from agora.agents import Envelope, Identity, LocalRuntime
from agora.agents.snapshot import FolderStore, SnapshotError
from agora.chain import MemoryLedger
from tests.agents.test_agent_model import Echo, Ping


def test_agents_come_back_as_they_were_and_still_refuse_old_nonces(tmp_path) -> None:
    ledger = MemoryLedger()
    rt = LocalRuntime(ledger)
    a, b = Echo("a"), Echo("b")
    rt.add(a)
    rt.add(b)
    rt.start()
    for n in range(3):
        rt._hosts[a.address].ctx.send(b.address, Ping(n=n))
    rt.run()
    rt._hosts[b.address].ctx.storage.set("mood", "busy")
    old = Envelope.seal(a.identity, b.address, Ping(n=9), nonce=1)  # a nonce b has already seen
    store = FolderStore(tmp_path)
    assert sorted(rt.snapshot(store)) == sorted([a.address, b.address])
    for key in store.keys():
        data = store.get(key)
        for who in (a, b):
            assert bytes(who.identity._account.key) not in data  # keys never sit in a snapshot

    keys = {x.address: x.identity for x in (a, b)}
    again = LocalRuntime(ledger)
    assert sorted(again.restore(store, keys.__getitem__)) == sorted(keys)
    b2 = again.agent(b.address)
    assert b2 is not b and b2.pings == [0, 1, 2] and again.agent(a.address).pongs == [0, 1, 2]
    assert again._hosts[b.address].ctx.storage.get("mood") == "busy"
    again._push(again.now(), old)
    again.run()
    assert again.rejections() == {"b": {"ReplayedMessage": 1}}
    again._hosts[a.address].ctx.send(b.address, Ping(n=7))  # a's next nonce follows its last: accepted
    again.run()
    assert b2.pings[-1] == 7 and again.agent(a.address).pongs[-1] == 7


def test_a_settled_buyer_comes_back_with_its_deal_bound_to_the_new_host(store, tmp_path) -> None:
    from agora.agents.population import Population
    from agora.economy.lifecycle import DealState
    from agora.simulations.demo import TradeConfig, build_runtime, run_trade
    from tests.agents.test_population import DEMO

    population = Population.load(DEMO)
    agents = {("buyer" if a.name == "buyer" else a.name): a for a, _ in population.build()}
    config = TradeConfig(runtime="local", ledger="memory", store_root=str(store.root))
    runtime = build_runtime(config)
    report = run_trade(config, runtime=runtime, agents=agents)
    assert report.deal.status == "settled"
    snapshots = FolderStore(tmp_path)
    runtime.snapshot(snapshots)

    keys = population.identities()
    by_address = {k.address: k for k in keys.values()}
    again = LocalRuntime(runtime.ledger, store=runtime.store)
    again.restore(snapshots, by_address.__getitem__)
    buyer = again.agent(agents["buyer"].address)
    (deal,) = buyer.deals.values()
    assert deal.status == "settled" and deal.paid == report.deal.paid
    lifecycle = buyer._lifecycle(deal.deal_id)
    assert lifecycle.ledger is again._hosts[buyer.address].ctx.ledger  # re-bound, not a copy
    assert lifecycle.sync() is DealState.SETTLED


def test_wrong_key_or_version_is_refused(tmp_path) -> None:
    rt = LocalRuntime(MemoryLedger())
    a = Echo("a")
    rt.add(a)
    store = FolderStore(tmp_path)
    rt.snapshot(store)
    with pytest.raises(SnapshotError, match="the key given"):
        LocalRuntime(MemoryLedger()).restore(store, lambda address: Identity.from_seed(0, "someone-else"))
    (key,) = store.keys()
    header = pickle.loads(store.get(key))
    store.put(key, pickle.dumps({**header, "version": 99}))
    with pytest.raises(SnapshotError, match="version"):
        LocalRuntime(MemoryLedger()).restore(store, lambda address: a.identity)
    with pytest.raises(SnapshotError, match="plain names"):
        store.put("../escape", b"x")
