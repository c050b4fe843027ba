"""Issue 19, item 5: free compute-to-data in someone else's name. A stranger in the market ran a
job on a data owner's vault through its executor: the result came back, the owner earned
nothing, and the access log named another requester. Now an agent's executor runs jobs only as
that agent, and the vault runs one only for the provider of a paid deal that covers it (open,
paying the owner its price on its line; or disputed, for the arbiter's re-run), a bounded number
of times per deal; the log names the real requester and the deal. The owner's line is paid at use
(drawn by the provider before the vault runs the job): a funded deal is not a paid one, as the
buyer chooses its release amounts and a provider may refund."""

from __future__ import annotations

import pytest

from agora.agents import Agent, DataOwner, Identity, LocalRuntime
from agora.chain import MemoryLedger
from agora.chain.types import EscrowTerms, owned_id
from agora.tasks import ContentStore, JobSpec, TasksError
from agora.tasks.vault import AccessDenied

ROWS = ["a private note", "another private note"]
PRICE = 10**15
key = lambda name: Identity.from_seed("vault-access", name)  # noqa: E731


class Stranger(Agent):
    role = "buyer"


def _market(store):
    owner = DataOwner("clinic", key("clinic"), ROWS, "notes", price_per_use=PRICE)
    stranger, provider = Stranger("stranger", key("stranger")), Stranger("provider", key("provider"))
    rt = LocalRuntime(MemoryLedger(), store=ContentStore(store.root), seed=1)
    for agent in (owner, stranger, provider):
        rt.add(agent)
    rt.start()
    for agent in (stranger, provider):
        rt.context(agent.address).wallet.open_account()
        rt.ledger.mint(agent.address, 10 * PRICE)
    return rt, owner, stranger, provider


def _escrow(rt, buyer, payees: list[str], shares: list[int], amount: int, n: int = 1) -> str:
    deal = owned_id(buyer.address, "vault", n)
    drawable = [i for i, p in enumerate(payees) if i > 0]  # the buyer lets the provider pay the owner at use
    rt.context(buyer.address).wallet.open_escrow(
        EscrowTerms(escrow_id=deal, payees=payees, shares_bps=shares, amount=amount, deadline=int(rt.ledger.now()) + 600, drawable=drawable)
    )
    return deal


def test_no_job_runs_on_a_vault_without_a_paid_deal_nor_in_another_name(store, minilm_hash) -> None:
    rt, owner, stranger, provider = _market(store)
    ctx = rt.context(stranger.address)
    spec = JobSpec(job_id="free", model_hash=minilm_hash, dataset_hash=owner.dataset_hash, vault=owner.vault)
    taken: list[str] = []

    def attempt(what: str, run) -> None:  # type: ignore[no-untyped-def]
        try:
            run()
        except TasksError:
            return
        taken.append(what)

    attempt("in the provider's name", lambda: ctx.executor.run(spec, requester=provider.address))
    attempt("with no deal", lambda: ctx.executor.run(spec))
    attempt("through the owner's vault client", lambda: ctx.executor.vault(owner.vault).run(spec, provider.address))
    attempt("opening the owner's vault", lambda: ctx.executor.open_vault(owner.address))
    cheap = _escrow(rt, stranger, [stranger.address, owner.address], [9_999, 1], 2 * PRICE)  # the owner's line: 1 bp
    attempt("on a deal that underpays the owner", lambda: ctx.executor.run(spec, deal_id=cheap))
    theirs = _escrow(rt, provider, [provider.address, owner.address], [5_000, 5_000], 2 * PRICE)
    attempt("on another provider's deal", lambda: ctx.executor.run(spec, deal_id=theirs))
    assert taken == []
    log = owner.access_log()
    assert {r["requester"] for r in log} == {stranger.address} and not any(r["granted"] for r in log)


def test_a_paid_deal_covers_its_provider_a_bounded_number_of_times(store, minilm_hash) -> None:
    rt, owner, buyer, provider = _market(store)
    spec = JobSpec(job_id="paid", model_hash=minilm_hash, dataset_hash=owner.dataset_hash, vault=owner.vault)
    deal = _escrow(rt, buyer, [provider.address, owner.address], [5_000, 5_000], 2 * PRICE)
    ctx = rt.context(provider.address)
    ctx.wallet.draw(deal, 1)  # the owner's fee, paid at use
    assert ctx.executor.run(spec, deal_id=deal).metering.items == 2
    assert ctx.executor.run(spec).metering.items == 2  # the deal found on the ledger when not named
    with pytest.raises(AccessDenied):
        ctx.executor.run(spec, deal_id=deal)  # its uses are spent
    log = owner.access_log()
    assert [(r["requester"], r["granted"], r["deal_id"]) for r in log] == [(provider.address, True, deal)] * 2 + [(provider.address, False, deal)]


def test_the_owner_is_paid_at_use_whatever_the_deal_ends_in(store, minilm_hash) -> None:
    """A provider and its buyer (or one agent playing both) ran a job on the owner's data under a
    funded deal, then refunded it: the owner's line was never paid. Now the vault holds the
    result until the owner's line is drawn (paid at once, kept whatever the deal's end), and the
    same request collects it after the draw without running again."""
    from agora.tasks.vault import ResultHeld

    rt, owner, buyer, provider = _market(store)
    spec = JobSpec(job_id="used", model_hash=minilm_hash, dataset_hash=owner.dataset_hash, vault=owner.vault)
    deal = _escrow(rt, buyer, [provider.address, owner.address], [5_000, 5_000], 2 * PRICE)
    ctx, earned = rt.context(provider.address), rt.ledger.balance_of(owner.address)
    with pytest.raises(ResultHeld, match="drawn") as held:
        ctx.executor.run(spec, deal_id=deal)  # funded, not paid: the result stays in the vault
    assert (held.value.deal_id, held.value.line) == (deal, 1)
    ctx.wallet.draw(deal, held.value.line)
    assert ctx.executor.run(spec, deal_id=deal).metering.items == 2  # collected, not run again
    assert [r["granted"] for r in owner.access_log()] == [True]
    ctx.wallet.refund(deal)  # the provider refunds its buyer after the use
    assert rt.ledger.balance_of(owner.address) - earned == PRICE  # the fee stays with the owner
    assert rt.ledger.escrow(deal).status == "refunded" and rt.ledger.is_conserved()


def test_a_policy_changed_after_the_draw_does_not_keep_the_fee_and_the_result(store, minilm_hash) -> None:
    """A review's attack: the owner waits for the provider's draw, then changes its policy, so
    the second ask is refused and the provider, whose job "failed", repays the buyer the fee
    the owner kept. A held result is handed over under the price in force when it ran."""
    from agora.tasks.vault import AccessPolicy, ResultHeld

    rt, owner, buyer, provider = _market(store)
    spec = JobSpec(job_id="swap", model_hash=minilm_hash, dataset_hash=owner.dataset_hash, vault=owner.vault)
    deal = _escrow(rt, buyer, [provider.address, owner.address], [5_000, 5_000], 2 * PRICE)
    ctx = rt.context(provider.address)
    with pytest.raises(ResultHeld) as held:
        ctx.executor.run(spec, deal_id=deal)
    ctx.wallet.draw(deal, held.value.line)
    vault = rt.executor.vault(owner.vault)
    vault.policies[owner.dataset_hash] = AccessPolicy(price_per_use=100 * PRICE, tasks=["generation"])  # after the draw
    assert ctx.executor.run(spec, deal_id=deal).metering.items == 2


@pytest.mark.ray
def test_on_ray_the_vault_runs_only_signed_requests_under_a_paid_deal(ray_cluster, store, minilm_hash) -> None:
    """Any client of the cluster can call a vault actor: a market's vault runs a job only for
    the requester whose key signed it, and only under a paid deal."""
    import ray

    from agora.agents.ray import RayRuntime
    from agora.tasks.executor import vault_name
    from agora.tasks.vault import ForgedRequest, UnpaidUse, request_digest

    owner = DataOwner("ray-clinic", key("ray-clinic"), ROWS, "notes", price_per_use=PRICE)
    rt = RayRuntime(MemoryLedger, shards=1, store_root=str(store.root))
    rt.add(owner)
    rt.start()
    try:
        name = vault_name(owner.address)
        digest = rt.query(owner.address, "dataset_hash")
        vault, stranger, provider = ray.get_actor(name), key("stranger"), key("provider")
        spec = JobSpec(job_id="free", model_hash=minilm_hash, dataset_hash=digest, vault=name)
        with pytest.raises(ForgedRequest):  # in the provider's name, without its signature
            ray.get(vault.run.remote(spec, provider.address, None, None, stranger.sign_digest(request_digest(name, spec, None, provider.address))))
        with pytest.raises(UnpaidUse):  # its own name, no deal
            ray.get(vault.run.remote(spec, stranger.address, None, None, stranger.sign_digest(request_digest(name, spec, None, stranger.address))))
        log = ray.get(vault.access_log.remote())
        assert [(r.requester, r.granted) for r in log] == [(provider.address, False), (stranger.address, False)]
        assert "not signed" in log[0].reason
    finally:
        rt.shutdown()
