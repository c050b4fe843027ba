"""Pay per call: a model served behind a payment channel, as SingularityNET's daemon serves AI.

For many small calls an escrow per call is too slow and too dear. The caller opens one payment
channel to the server (a deposit locked on the ledger for the server), then signs, with each
call, a voucher for the cumulative amount owed so far (EIP-712, bound to the channel contract
and chain). The server checks the voucher off-chain before serving (signer, nonce, expiry
margin, deposit, and that it adds exactly the call's price: chain.offchain.ChannelReceiver),
runs the job on its executor (a Ray task under RayRuntime), answers with the result and its
metering, and redeems the best voucher on the ledger every ``claim_every`` calls (and when it
stops). A caller never pays for a call it was refused, and never more than its deposit.

A server may host a model someone else uploaded (``model_hash=``): then a call costs the
server's fee plus the owner's royalty per call (its ModelOffer's ``price_per_call``), and right
after each claim the server pays the owner the royalty of every call that claim redeemed, through
the ledger, so the owner earns on each use without running a daemon of its own. Servers list
themselves in discovery as ``model-call`` services (price: the whole call; terms: the model, its
owner, the royalty), which is how callers find them.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from agents.agent import Agent, Context, on_message
from agents.identity import Identity
from agents.messages import Message
from agents.registry import ModelOffer, ServiceRecord
from agents.roles.owners import SERVICE_TTL
from chain import ChainError
from chain.offchain import ChannelReceiver, voucher_typed_data
from chain.types import ChannelClaim, ChannelTerms
from tasks.errors import TasksError
from tasks.jobs import JobResult, JobSpec, Resources


class CallModel(Message):
    """Caller to server: run ``inputs`` through the served model; the voucher pays for it."""

    call_id: int = Field(ge=0)
    inputs: list[str]
    channel_id: str
    amount: int = Field(ge=0, description="cumulative amount owed since the channel's last claim, this call included")
    signature: str
    sent_at: float = 0.0


class CallAnswer(Message):
    call_id: int
    result: JobResult
    sent_at: float = 0.0
    claim_tx: str = Field(default="", description="the claim that redeemed this call's voucher, when the server claimed before answering")


class CallRefused(Message):
    call_id: int
    reason: str


class ModelServer(Agent):
    """Serves one model through payment channels. With ``model_path`` the server is the model's
    owner (it uploads and lists the model, and ``price_per_call`` is all its); with
    ``model_hash`` it hosts a model its owner listed, ``price_per_call`` is its serving fee, and
    each call also carries the owner's royalty, paid on to the owner at every claim."""

    role = "model_server"

    def __init__(self, name: str, identity: Identity, model_path: str | None, model_name: str, price_per_call: int,
                 resources: dict[str, Any] | None = None, task: str = "embedding", claim_every: int = 100, model_hash: str = "") -> None:
        super().__init__(name, identity)
        if bool(model_path) == bool(model_hash):
            raise TasksError("a ModelServer needs exactly one of model_path (its own model) or model_hash (an owner's listed model)")
        self.model_path, self.model_name, self.fee, self.task = str(model_path or ""), model_name, price_per_call, task
        self.resources = Resources.model_validate(resources or {})
        self.claim_every = claim_every
        self.model_hash = model_hash
        self.owner, self.royalty = "", 0
        self.price_per_call = price_per_call  # the whole call, royalty included (set at start)
        self.receivers: dict[str, ChannelReceiver] = {}
        self.served = self.refused = 0
        self.royalty_paid_calls = self.royalty_paid = 0
        self.claims: list[str] = []

    def on_start(self, ctx: Context) -> None:
        ctx.wallet.open_account()
        if self.model_path:
            self.model_hash = ctx.store.put(self.model_path)
            offer = ModelOffer(owner=self.address, model_hash=self.model_hash, name=self.model_name, task=self.task, price_per_call=self.fee)
            ctx.registry.register_model(offer)
        else:
            offer = ctx.registry.model(self.model_hash)  # UnknownOffer when nobody listed it
            if offer.task != self.task:
                raise TasksError(f"model {self.model_hash[:12]}… is a {offer.task} model, not {self.task}")
            self.owner, self.royalty = offer.owner, offer.price_per_call
        self.price_per_call = self.fee + self.royalty
        ctx.registry.register_agent(self.address, self.name, self.role)
        terms = {"name": self.model_name, "task": self.task, "model_hash": self.model_hash, "owner": self.owner or self.address, "royalty_per_call": self.royalty, "per": "call"}
        ctx.registry.register_service(
            ServiceRecord(address=self.address, name=self.name, capability="model-call", price=self.price_per_call, terms=terms, protocols=self.protocol_digests(), ttl=SERVICE_TTL),
            now=ctx.now(),
        )

    def on_stop(self, ctx: Context) -> None:
        self.claim(ctx)

    @on_message(CallModel, replies={CallAnswer, CallRefused})
    def call(self, ctx: Context, sender: str, msg: CallModel) -> None:
        try:
            receiver = self._receiver(ctx, msg.channel_id, sender)
            held = (receiver.amount, receiver.signature)  # the best voucher before this call
            receiver.accept(msg.amount, msg.signature, charge=self.price_per_call, now=int(ctx.ledger.now()))
        except ChainError as exc:
            self.refused += 1
            ctx.send(sender, CallRefused(deal_id=msg.deal_id, call_id=msg.call_id, reason=f"payment refused: {exc}"))
            return
        spec = JobSpec(job_id=f"{msg.channel_id[:10]}-{msg.call_id}", model_hash=self.model_hash, task=self.task, inputs=msg.inputs, resources=self.resources)
        try:
            result = ctx.executor.run(spec, requester=sender)
        except TasksError as exc:  # a call not served is not paid: keep the voucher from before
            receiver.amount, receiver.signature = held
            self.refused += 1
            ctx.send(sender, CallRefused(deal_id=msg.deal_id, call_id=msg.call_id, reason=f"job failed: {exc}"))
            return
        self.served += 1
        claim_tx = ""
        if self.served % self.claim_every == 0:
            self.claim(ctx)  # before answering: the caller's next voucher then counts from this claim
            claim_tx = self.claims[-1] if self.claims else ""
        ctx.send(sender, CallAnswer(deal_id=msg.deal_id, call_id=msg.call_id, result=result, sent_at=msg.sent_at, claim_tx=claim_tx))

    def _receiver(self, ctx: Context, channel_id: str, sender: str) -> ChannelReceiver:
        receiver = self.receivers.get(channel_id)
        if receiver is None:
            state = ctx.ledger.channel(channel_id)
            # who carries the call does not matter (a gateway relays its HTTP callers' calls): the
            # voucher pays, and ChannelReceiver accepts only the channel's sender's signature on it
            if state.recipient.lower() != self.address.lower():
                from chain.errors import error_for_reason

                raise error_for_reason("channel: unauthorized", f"channel {channel_id[:10]}… does not pay me")
            receiver = self.receivers[channel_id] = ChannelReceiver(state, ctx.ledger.domains()["channel"])
        return receiver

    def claim(self, ctx: Context) -> None:
        """Redeem every channel's best voucher in one ledger operation."""
        claims = [ChannelClaim(channel_id=c, amount=r.amount, signature=r.signature) for c, r in self.receivers.items() if r.amount]
        if not claims:
            return
        receipt = ctx.wallet.claim_channels(claims)
        self.claims.append(receipt.tx_hash)
        for c, r in self.receivers.items():
            r.claimed(ctx.ledger.channel(c))
        self._pay_royalty(ctx)

    def _pay_royalty(self, ctx: Context) -> None:
        """Hand the owner the royalty of every call redeemed so far and not yet paid on: each
        served call's voucher is in the claim just made, so all of ``served`` is now in hand."""
        calls = self.served - self.royalty_paid_calls
        if not self.owner or not self.royalty or calls <= 0:
            return
        ctx.wallet.transfer(self.owner, calls * self.royalty)
        self.royalty_paid_calls += calls
        self.royalty_paid += calls * self.royalty


class Caller(Agent):
    """Finds a served model by name, opens one channel with ``deposit``, then sends ``calls``
    batches of ``inputs`` one after another, paying each with a voucher; records latencies."""

    role = "caller"

    def __init__(self, name: str, identity: Identity, model: str, inputs: list[str], calls: int, deposit: int, channel_seconds: int = 3600) -> None:
        super().__init__(name, identity)
        self.model, self.inputs, self.calls, self.deposit, self.channel_seconds = model, list(inputs), calls, deposit, channel_seconds
        self.server = self.channel_id = ""
        self.price = self.owed = self.sent = 0
        self.answers: list[JobResult] = []
        self.latencies: list[float] = []
        self.refusals: list[str] = []

    def on_start(self, ctx: Context) -> None:
        ctx.wallet.open_account()
        offers = [r for r in ctx.registry.search("model-call", ctx.now(), max_price=self.deposit) if r.terms.get("name") == self.model]
        if not offers:
            self.refusals.append(f"no served model named {self.model!r} within the deposit")
            return
        self.server, self.price = offers[0].address, offers[0].price  # the cheapest
        from eth_utils import keccak

        self.channel_id = "0x" + keccak(text=f"{self.address}:{self.server}:{ctx.now()}").hex()
        ctx.wallet.open_channel(ChannelTerms(channel_id=self.channel_id, recipient=self.server, amount=self.deposit, expiration=int(ctx.ledger.now()) + self.channel_seconds))
        self._next(ctx)

    def _next(self, ctx: Context) -> None:
        if self.sent >= self.calls or self.owed + self.price > self.deposit:
            return
        self.owed += self.price
        state = ctx.ledger.channel(self.channel_id)
        # vouchers count from the last claim: a claim pays out of the deposit and moves the nonce on
        amount = self.owed - (self.deposit - state.deposit)
        signature = ctx.wallet.sign_typed_data(voucher_typed_data(ctx.ledger.domains()["channel"], self.channel_id, state.nonce, amount))
        ctx.send(self.server, CallModel(call_id=self.sent, inputs=self.inputs, channel_id=self.channel_id, amount=amount, signature=signature, sent_at=time.perf_counter()))
        self.sent += 1

    @on_message(CallAnswer)
    def answered(self, ctx: Context, sender: str, msg: CallAnswer) -> None:
        if sender != self.server:
            return
        self.latencies.append(time.perf_counter() - msg.sent_at)
        self.answers.append(msg.result)
        self._next(ctx)

    @on_message(CallRefused)
    def refused(self, ctx: Context, sender: str, msg: CallRefused) -> None:
        if sender == self.server:
            self.owed -= self.price  # not served, not owed: the next voucher does not count it
            self.refusals.append(msg.reason)

    def done(self) -> bool:
        return bool(self.refusals) and not self.channel_id or len(self.answers) + len(self.refusals) >= self.calls
