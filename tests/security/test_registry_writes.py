"""Issue 19, item 2: every registry write accepted any address. A stranger in the market (its own
valid key, acting only through its context) rated in the name of the pre-trusted anchor and of a
buyer, re-listed other owners' models and datasets under itself, withdrew another agent's
services, re-registered another agent under a new role, and claimed the arbiter's role. Now an
agent's ``ctx.registry`` writes only in its own name, a role is the one its host gave it, a
listed hash keeps its first owner, and a rating needs a settled deal between rater and ratee."""

from __future__ import annotations

import pytest

from agora.agents import Agent, Context, Identity, LocalRuntime
from agora.agents.registry import ComputeOffer, DatasetOffer, ModelOffer, Registry, RegistryRefused, ServiceRecord
from agora.chain import MemoryLedger
from agora.chain.types import EscrowTerms, owned_id

HASH_M, HASH_D = "a" * 64, "d" * 64
key = lambda name: Identity.from_seed("registry-writes", name)  # noqa: E731


class Plain(Agent):
    """An honest agent: lists what it owns and offers a service."""

    role = "model_owner"

    def on_start(self, ctx: Context) -> None:
        ctx.wallet.open_account()
        model, data = (HASH_M, HASH_D) if self.name == "victim" else (self.address[2:].lower().ljust(64, "0"),) * 2
        ctx.registry.register_model(ModelOffer(owner=self.address, model_hash=model, name="m", price_per_call=5))
        ctx.registry.register_dataset(DatasetOffer(owner=self.address, dataset_hash=data, name="d", items=3, price_per_use=5))
        ctx.registry.register_agent(self.address, self.name, self.role)
        ctx.registry.register_service(ServiceRecord(address=self.address, name=self.name, capability="model", price=5), now=ctx.now())


class Stranger(Agent):
    """Tries every write in someone else's name; keeps what was refused."""

    role = "trader"

    def __init__(self, name: str, identity: Identity) -> None:
        super().__init__(name, identity)
        self.refused: list[str] = []
        self.done: list[str] = []

    def attempt(self, what: str, write) -> None:  # type: ignore[no-untyped-def]
        try:
            write()
        except RegistryRefused as exc:
            self.refused.append(f"{what}: {type(exc).__name__}")
        except Exception as exc:  # noqa: BLE001 - taken, but failed for another reason
            self.done.append(f"{what} ({type(exc).__name__})")
        else:
            self.done.append(what)


def _market(sign: bool = True):
    anchor, victim, buyer = Plain("anchor", key("anchor")), Plain("victim", key("victim")), Plain("buyer", key("buyer"))
    rt = LocalRuntime(MemoryLedger(), registry=Registry(pretrusted=[anchor.address]), sign=sign)
    stranger = Stranger("stranger", key("stranger"))
    for agent in (victim, anchor, buyer, stranger):
        rt.add(agent)
    rt.start()
    return rt, stranger, victim, anchor, buyer


def test_no_registry_write_is_taken_in_another_agents_name() -> None:
    rt, stranger, victim, anchor, buyer = _market()
    ctx, v, me = rt.context(stranger.address), victim.address, stranger.address
    writes = {
        "rate as the anchor": lambda: ctx.registry.rate(anchor.address, me, True, 10**18, "compute"),
        "rate as a buyer": lambda: ctx.registry.rate(buyer.address, v, False, 10**18, "compute"),
        "list another's model": lambda: ctx.registry.register_model(ModelOffer(owner=v, model_hash="b" * 64, name="x", price_per_call=1)),
        "re-list a model under itself": lambda: ctx.registry.register_model(ModelOffer(owner=me, model_hash=HASH_M, name="m", price_per_call=1)),
        "re-list a dataset under itself": lambda: ctx.registry.register_dataset(
            DatasetOffer(owner=me, dataset_hash=HASH_D, name="d", items=3, price_per_use=1)
        ),
        "withdraw another's services": lambda: ctx.registry.withdraw(v),
        "heartbeat another's services": lambda: ctx.registry.heartbeat(v, ctx.now()),
        "a service in another's name": lambda: ctx.registry.register_service(ServiceRecord(address=v, name="v", capability="model", price=0), now=ctx.now()),
        "re-register another agent": lambda: ctx.registry.register_agent(v, "victim", "arbiter"),
        "claim the arbiter's role": lambda: ctx.registry.register_agent(me, "stranger", "arbiter"),
        "list a cohort for another": lambda: ctx.registry.register_cohort(v, [me], ["0x"]),
        "compute offered as another": lambda: ctx.registry.register_compute(ComputeOffer(owner=v, gpus=1, price_per_second=1)),
    }
    for what, write in writes.items():
        stranger.attempt(what, write)
    assert stranger.done == [], stranger.done
    assert len(stranger.refused) == len(writes)
    reg = rt.registry
    assert reg.model(HASH_M).owner == v and reg.dataset(HASH_D).owner == v  # the fees still go to the owner
    assert reg.agents()[v]["role"] == "model_owner" and me not in reg.agents()
    assert [s.address for s in reg.search("model", rt.now())].count(v) == 1
    assert not reg.reputation.graph.has_node(me)
    # its own writes, in its own name and role, still go through
    ctx.registry.register_agent(me, "stranger", "trader")
    ctx.registry.register_service(ServiceRecord(address=me, name="s", capability="gpu", price=1), now=ctx.now())
    assert reg.agents()[me]["role"] == "trader" and ctx.registry.withdraw(me) == 1


def test_a_rating_needs_a_settled_deal_between_the_two_and_counts_once() -> None:
    rt, stranger, victim, _, buyer = _market()
    ctx, me, v = rt.context(stranger.address), stranger.address, victim.address
    with pytest.raises(RegistryRefused):
        ctx.registry.rate(me, v, False, 10, "compute")  # no deal at all
    ctx.wallet.open_account()
    rt.ledger.mint(me, 100)
    deal = owned_id(me, "deal", 1)
    ctx.wallet.open_escrow(EscrowTerms(escrow_id=deal, payees=[v], shares_bps=[10_000], amount=100, deadline=int(rt.ledger.now()) + 60))
    with pytest.raises(RegistryRefused):
        ctx.registry.rate(me, v, False, 100, "compute", deal_id=deal)  # open: nothing delivered or refunded yet
    ctx.wallet.release(deal, 100)
    with pytest.raises(RegistryRefused):
        ctx.registry.rate(me, v, False, 10**18, "compute", deal_id=deal)  # weighs more than the deal paid
    with pytest.raises(RegistryRefused):
        ctx.registry.rate(me, buyer.address, False, 10, "compute", deal_id=deal)  # the deal is not with that agent
    ctx.registry.rate(me, v, True, 100, "compute", deal_id=deal)
    with pytest.raises(RegistryRefused):
        ctx.registry.rate(me, v, True, 100, "compute", deal_id=deal)  # once per deal
    with pytest.raises(RegistryRefused):
        ctx.registry.rate(me, v, True, 100, "compute")  # nor again by finding that deal on the ledger
    assert rt.registry.reputation.graph[me][v]["good"] == 100
    # without a deal id, the payee finds the deal on the ledger and rates its buyer once
    rt.context(v).registry.rate(v, me, True, 50, "data")
    assert rt.registry.reputation.graph[v][me]["good"] == 50


def test_a_buyer_rates_a_provider_down_only_under_a_contract_it_signed() -> None:
    """A rater funded an escrow naming an honest provider, took it back (a release of 0) and
    rated the provider down: a settled escrow between the two, but no deal the provider agreed
    to. Now a buyer's rating against a payee needs the contract of that escrow signed by it."""
    from agora.economy.contract import Contract, Payee, deal_domain

    rt, stranger, victim, _, _ = _market()
    ctx, me, v = rt.context(stranger.address), stranger.address, victim.address
    ctx.wallet.open_account()
    rt.ledger.mint(me, 1000)

    def contract(n: int) -> Contract:
        return Contract(
            deal_id=owned_id(me, "framed", n),
            buyer=me,
            payees=[Payee(address=v, role="provider", amount=100)],
            deadline=int(rt.ledger.now()) + 60,
            job_hash="0x" + "ab" * 32,
            **deal_domain(rt.ledger),
        )

    framed, signed = contract(1), contract(2)
    for c in (framed, signed):
        ctx.wallet.open_escrow(c.escrow_terms())
        ctx.wallet.release(c.deal_id, 0)  # settled, nothing paid
    with pytest.raises(RegistryRefused, match="signed"):
        ctx.registry.rate(me, v, False, 100, "compute", deal_id=framed.deal_id)  # no contract
    with pytest.raises(RegistryRefused, match="signed"):
        ctx.registry.rate(me, v, False, 100, "compute")  # nor one found on the ledger
    forged = stranger.identity.sign_typed_data(framed.typed_data())
    with pytest.raises(RegistryRefused, match="not signed by"):
        ctx.registry.rate(me, v, False, 100, "compute", contract=framed, signature=forged)  # its own signature
    theirs = victim.identity.sign_typed_data(signed.typed_data())
    with pytest.raises(RegistryRefused, match="not the one"):
        ctx.registry.rate(me, v, False, 100, "compute", deal_id=framed.deal_id, contract=signed, signature=theirs)  # another deal's
    assert not rt.registry.reputation.graph.has_edge(me, v)
    ctx.registry.rate(me, v, False, 100, "compute", contract=signed, signature=theirs)  # a deal it signed: counts
    assert rt.registry.reputation.graph[me][v]["bad"] == 100


def test_the_registry_actor_rebuilds_a_ratings_contract_from_its_fields() -> None:
    """A review's attack on the Ray path: a writer's signed write is unpickled by the registry
    actor, so a "contract" that is any object with the right attributes (its signature check a
    builtin that returns anything) passed the consent check. The contract now travels as data
    and is rebuilt and validated; any other object is refused before the ledger is read."""
    import functools
    import types

    from agora.agents.ray.registry import RegistryService, WriteSigner
    from agora.agents.registry import RatingRefused

    rater, ratee = key("rater"), key("ratee")
    fake = types.SimpleNamespace(
        deal_id="0x" + "11" * 32, buyer=rater.address, provider=ratee.address, escrow_terms=functools.partial(dict), verify_signature=max
    )
    service, signer = RegistryService(), WriteSigner()
    for contract in (fake, "0x00", {"deal_id": "not a deal"}):
        with pytest.raises(RatingRefused):
            service.write(
                *signer.sign(rater, "rate", (rater.address, ratee.address, False, 10, "compute"), {"deal_id": None, "contract": contract, "signature": ""})
            )
    assert not service.reputation.graph.has_edge(rater.address, ratee.address)


@pytest.mark.ray
def test_on_ray_the_registry_actor_takes_only_signed_writes_in_the_writers_name(ray_cluster) -> None:
    """A shard is trusted only with the agents it hosts, and a guest's runs code the deployment
    does not control: the registry actor checks each write's signature, number, name and role."""
    import ray

    from agora.agents.ray import RayRuntime
    from agora.agents.ray.registry import WriteSigner

    rt = RayRuntime(MemoryLedger, shards=1)
    victim = Plain("victim", key("victim"))
    rt.add(victim)
    rt.start()
    try:
        actor, stranger, signer = rt._registry_actor, key("stranger"), WriteSigner()
        me, v = stranger.address, victim.address
        assert rt.registry.model(HASH_M).owner == v and rt.registry.agents()[v]["role"] == "model_owner"

        def refused(*op) -> str:  # type: ignore[no-untyped-def]
            errors = ray.get(actor.apply.remote([op]))
            return errors[0] if errors else ""

        with pytest.raises(RegistryRefused):  # straight at the actor, unsigned
            ray.get(actor.withdraw.remote(v))
        offer = ModelOffer(owner=me, model_hash=HASH_M, name="m", price_per_call=1)
        _, blob, signature = signer.sign(stranger, "register_model", (offer,), {})
        assert "NotYourName" in refused(v, blob, signature)  # signed by the stranger, sent as the victim's
        assert "ListingTaken" in refused(*signer.sign(stranger, "register_model", (offer,), {}))
        assert "NotYourName" in refused(*signer.sign(stranger, "withdraw", (v,), {}))
        assert "NotYourName" in refused(*signer.sign(stranger, "rate", (v, me, True, 10**18, "compute"), {"deal_id": None}))
        assert "RoleNotYours" in refused(*signer.sign(stranger, "register_agent", (me, "s", "arbiter"), {}))  # off the roster
        assert "RatingRefused" in refused(*signer.sign(stranger, "rate", (me, v, False, 10, "compute"), {"deal_id": None}))
        own = signer.sign(stranger, "register_agent", (me, "s", "trader"), {})
        assert refused(*own) == ""
        assert "replayed" in refused(*own)
        assert rt.registry.model(HASH_M).owner == v and [s.address for s in rt.registry.search("model", rt.ledger.now())] == [v]
        assert rt.registry.agents()[me]["role"] == "trader" and rt.registry.agents()[v]["role"] == "model_owner"
        assert rt.errors() == {}  # the victim's own signed writes all went through
    finally:
        rt.shutdown()


def test_the_arbiter_rates_only_the_provider_of_an_escrow_it_ruled_on() -> None:
    arbiter, buyer, provider = Stranger("arbiter", key("arbiter")), Stranger("b", key("b")), Stranger("p", key("p"))
    rt = LocalRuntime(MemoryLedger(arbiter=arbiter.address))
    for agent in (arbiter, buyer, provider):
        rt.add(agent)
    rt.start()
    wallet, judge = rt.context(buyer.address).wallet, rt.context(arbiter.address)
    wallet.open_account()
    rt.ledger.mint(buyer.address, 200)

    def terms(n):
        return EscrowTerms(
            escrow_id=owned_id(buyer.address, "ruled", n), payees=[provider.address], shares_bps=[10_000], amount=100, deadline=int(rt.ledger.now()) + 60
        )

    wallet.open_escrow(terms(1))
    wallet.release(terms(1).escrow_id, 100)
    with pytest.raises(RegistryRefused):
        judge.registry.rate(arbiter.address, provider.address, False, 100, "compute", deal_id=terms(1).escrow_id)  # never disputed
    with pytest.raises(RegistryRefused):
        judge.registry.rate(arbiter.address, provider.address, False, 100, "compute")
    wallet.open_escrow(terms(2))
    wallet.dispute(terms(2).escrow_id)
    judge.wallet.resolve(terms(2).escrow_id, 0)
    judge.registry.rate(arbiter.address, provider.address, False, 100, "compute")
    assert rt.registry.reputation.graph[arbiter.address][provider.address]["bad"] == 100
