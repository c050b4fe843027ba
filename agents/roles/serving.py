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

A call may instead be paid by an escrow the caller opened for it (``EscrowedCall``: one escrow,
one call): payees the server and, for a listed model, its owner, with lines that cover the fee
and the royalty (``escrow_terms`` writes them), no arbiter but the ledger's, and time left
before its deadline. The server checks all of that on the ledger before it serves, refunds the
escrow at once if the job fails, and after answering watches it: the caller verifies the result
and releases the bill (``escrow_bill``: fee to the server, royalty straight to the owner); a
caller that disputes it, or is still silent ``escrow_margin_s`` before the deadline (when it could
take a refund of work it received), has the escrow frozen and put before the arbiter, who re-runs
the job and pays or refunds (agents.roles.arbiter). The amounts a release pays are the caller's
choice: a caller whose release paid less than the bill is rated down for the shortfall and gets
no escrowed call from this server again (``shortfall``); channels, paid ahead, still serve it.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from agora.agents.agent import Agent, Context, on_message
from agora.agents.billing import call_bill
from agora.agents.deal_protocol import Claim, Ruling, from_self, refuse
from agora.agents.errors import NotAParty
from agora.agents.identity import Identity
from agora.agents.messages import Message
from agora.agents.registry import ModelOffer, ServiceRecord
from agora.agents.roles.owners import SERVICE_TTL
from agora.chain import ChainError
from agora.chain.errors import error_for_reason
from agora.chain.offchain import ChannelReceiver, call_authorization_typed_data, recover, voucher_typed_data
from agora.chain.types import ChannelClaim, ChannelTerms, EscrowState, owned_id, split
from agora.tasks.errors import TasksError
from agora.tasks.jobs import JobResult, JobSpec, Resources


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


class EscrowedCall(Message):
    """Caller to server: run ``inputs``; the escrow ``escrow_id`` (opened for this one call) pays.
    Whoever sends it (the buyer, or a gateway relaying for it), it carries the buyer's
    ``authorization``: its EIP-712 signature over this escrow, this server and these inputs
    (chain.offchain.call_authorization_typed_data)."""

    call_id: int = Field(ge=0)
    inputs: list[str]
    escrow_id: str
    sent_at: float = 0.0
    authorization: str = ""


class _EscrowCheck(Message):
    """Timer: look at an answered call's escrow again (released, disputed, refunded, or due)."""

    escrow_id: str


class ModelServer(Agent):
    """Serves one model through payment channels. With ``model_path`` the server is the model's
    owner (it uploads and lists the model, and ``price_per_call`` is all its); with
    ``model_hash`` it hosts a model its owner listed, ``price_per_call`` is its serving fee, and
    each call also carries the owner's royalty, paid on to the owner at every claim."""

    role = "model_server"

    def __init__(
        self,
        name: str,
        identity: Identity,
        model_path: str | None,
        model_name: str,
        price_per_call: int,
        resources: dict[str, Any] | None = None,
        task: str = "embedding",
        claim_every: int = 100,
        model_hash: str = "",
        escrow_window_s: float = 120.0,
        escrow_margin_s: float = 30.0,
    ) -> None:
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
        self.served = self.calls_refused = 0  # calls paid by channel (their count paces claims and royalties); calls refused
        self.refused: dict[str, int] = {}  # reason -> messages refused from the wrong sender (agents.deal_protocol.refuse)
        self.served_escrowed = 0  # calls paid by an escrow: the owner's royalty is its own line of it
        self.royalty_paid_calls = self.royalty_paid = 0
        self.claims: list[str] = []
        if not 0 < escrow_margin_s < escrow_window_s:
            raise TasksError(f"an escrowed call needs escrow_window_s ({escrow_window_s}) above escrow_margin_s ({escrow_margin_s}) above 0")
        self.escrow_window_s, self.escrow_margin_s = escrow_window_s, escrow_margin_s
        self.escrowed: dict[str, dict[str, Any]] = {}  # open escrow id -> the call it pays: job, result, status
        self.shorted: dict[str, int] = {}  # caller (an escrow's buyer) -> what its releases left unpaid

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
        terms: dict[str, str | int | float] = {
            "name": self.model_name,
            "task": self.task,
            "model_hash": self.model_hash,
            "owner": self.owner or self.address,
            "royalty_per_call": self.royalty,
            "per": "call",
        }
        ctx.registry.register_service(
            ServiceRecord(
                address=self.address,
                name=self.name,
                capability="model-call",
                price=self.price_per_call,
                terms=terms,
                protocols=self.protocol_digests(),
                ttl=SERVICE_TTL,
            ),
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
            self.calls_refused += 1
            ctx.send(sender, CallRefused(deal_id=msg.deal_id, call_id=msg.call_id, reason=f"payment refused: {exc}"))
            return
        spec = JobSpec(job_id=f"{msg.channel_id[:10]}-{msg.call_id}", model_hash=self.model_hash, task=self.task, inputs=msg.inputs, resources=self.resources)
        try:
            result = ctx.executor.run(spec)  # runs as this server (its executor refuses another requester), for the caller
        except TasksError as exc:  # a call not served is not paid: keep the voucher from before
            receiver.amount, receiver.signature = held
            self.calls_refused += 1
            ctx.send(sender, CallRefused(deal_id=msg.deal_id, call_id=msg.call_id, reason=f"job failed: {exc}"))
            return
        self.served += 1
        claim_tx = ""
        if self.served % self.claim_every == 0:
            self.claim(ctx)  # before answering: the caller's next voucher then counts from this claim
            claim_tx = self.claims[-1] if self.claims else ""
        ctx.send(sender, CallAnswer(deal_id=msg.deal_id, call_id=msg.call_id, result=result, sent_at=msg.sent_at, claim_tx=claim_tx))

    # -- calls paid by an escrow ----------------------------------------------------------------
    @on_message(EscrowedCall, replies={CallAnswer, CallRefused})
    def call_escrowed(self, ctx: Context, sender: str, msg: EscrowedCall) -> None:
        try:
            escrow = self._check_escrow(ctx, msg.escrow_id)
            self._check_caller(ctx, sender, msg, escrow)
        except ChainError as exc:
            self.calls_refused += 1
            ctx.send(sender, CallRefused(deal_id=msg.deal_id, call_id=msg.call_id, reason=f"payment refused: {exc}"))
            return
        spec = JobSpec(job_id=f"{msg.escrow_id[:10]}-{msg.call_id}", model_hash=self.model_hash, task=self.task, inputs=msg.inputs, resources=self.resources)
        # the block it was open at: its release, whenever it comes, is in an event from here on
        record = self.escrowed[escrow.escrow_id] = {
            "job": spec,
            "result": None,
            "status": "running",
            "from_block": ctx.ledger.block_number(),
            "authorization": msg.authorization,
        }
        try:
            result = ctx.executor.run(spec)  # runs as this server (its executor refuses another requester), for the caller
        except TasksError as exc:  # not served, not paid: the whole lock goes back now
            try:
                ctx.wallet.refund(escrow.escrow_id)
            except ChainError as failed:  # disputed meanwhile: the arbiter rules on it
                ctx.log.warning("could not refund escrow %s of a failed call: %s", escrow.escrow_id, failed)
            del self.escrowed[escrow.escrow_id]
            self.calls_refused += 1
            ctx.send(sender, CallRefused(deal_id=msg.deal_id, call_id=msg.call_id, reason=f"job failed: {exc} (escrow refunded)"))
            return
        self.served_escrowed += 1
        record.update(result=result, status="answered")
        ctx.send(sender, CallAnswer(deal_id=msg.deal_id, call_id=msg.call_id, result=result, sent_at=msg.sent_at))
        ctx.schedule(1.0, _EscrowCheck(escrow_id=escrow.escrow_id))

    def _check_caller(self, ctx: Context, sender: str, msg: EscrowedCall, escrow: EscrowState) -> None:
        """An escrow pays for its buyer's call: the call carries the buyer's signature over this
        escrow, this server and these inputs, whoever sends it (the buyer, or a gateway relaying
        for it). Else a stranger who learnt the id is served on the victim's money and the victim
        refused as already paid; and the signature is also what binds the job to the escrow
        before the arbiter, should the call be disputed."""
        typed = call_authorization_typed_data(ctx.ledger.domains()["escrow"], escrow.escrow_id, self.address, self.model_hash, self.task, msg.inputs)
        signer = recover(typed, msg.authorization) if msg.authorization else None
        if signer is None or signer.lower() != escrow.buyer.lower():
            what = "carries no authorization" if not msg.authorization else f"carries an authorization by {signer}"
            raise error_for_reason(
                "escrow: unauthorized", f"escrow {escrow.escrow_id[:10]}… is {escrow.buyer}'s; a call on it from {sender} {what} of its buyer for these inputs"
            )

    def _check_escrow(self, ctx: Context, escrow_id: str) -> EscrowState:
        """The escrow, if it pays this server for one call as ``escrow_terms`` says; else the
        ledger's typed error naming what is wrong."""
        escrow = ctx.ledger.escrow(escrow_id)  # EscrowNotFound
        payees, bill = call_bill(self.address, self.owner, self.price_per_call, self.royalty)
        if escrow.status != "open":
            raise error_for_reason("escrow: settled", f"escrow {escrow_id[:10]}… is {escrow.status}")
        if escrow_id in self.escrowed:
            raise error_for_reason("escrow: exists", f"escrow {escrow_id[:10]}… already paid for a call")
        owed = self.shorted.get(escrow.buyer.lower(), 0)
        if owed:
            raise error_for_reason(
                "escrow: unauthorized",
                f"{escrow.buyer} released {owed} less than the bill of its earlier escrowed calls here: no more escrowed calls for it (a channel, paid ahead, still serves it)",
            )
        if [p.lower() for p in escrow.payees] != [p.lower() for p in payees]:
            raise error_for_reason("escrow: unauthorized", f"escrow {escrow_id[:10]}… pays {escrow.payees}, not {payees} (server, then the model's owner)")
        short = [(p, line, due) for p, line, due in zip(payees, split(escrow.amount, escrow.shares_bps), bill, strict=False) if line < due]
        if short:
            p, line, due = short[0]
            raise error_for_reason("escrow: bad amount", f"escrow {escrow_id[:10]}…'s line for {p} is {line}, the call owes it {due}")
        if escrow.arbiter is not None and escrow.arbiter.lower() != ctx.ledger.arbiter.lower():
            raise error_for_reason("escrow: unauthorized", f"escrow {escrow_id[:10]}… names its own arbiter {escrow.arbiter}, not the ledger's")
        if escrow.deadline - ctx.ledger.now() < self.escrow_window_s:
            raise error_for_reason(
                "escrow: bad deadline", f"escrow {escrow_id[:10]}… ends in {escrow.deadline - ctx.ledger.now()} s; a call needs {self.escrow_window_s:.0f}"
            )
        return escrow

    @on_message(_EscrowCheck)
    def escrow_check(self, ctx: Context, sender: str, msg: _EscrowCheck) -> None:
        """Released or refunded: done. Disputed by the caller, or still open near the deadline:
        freeze it (if need be) and put the result before the arbiter. Else look again."""
        record = self.escrowed.get(msg.escrow_id)
        if not from_self(self, ctx, sender) or record is None or record["status"] not in ("answered", "claimed", "ruled"):
            return
        escrow = ctx.ledger.escrow(msg.escrow_id)
        if escrow.status in ("released", "refunded"):  # done with: the ledger refuses it again from now on
            if escrow.status == "released" and record["status"] == "answered":  # the caller's own release, no ruling
                self._check_release(ctx, escrow, record)
            del self.escrowed[msg.escrow_id]
            return
        due = escrow.deadline - ctx.ledger.now() <= self.escrow_margin_s
        if record["status"] == "answered" and (escrow.status == "disputed" or due):
            self._claim_escrow(ctx, msg.escrow_id, record, escrow)
        ctx.schedule(1.0 if escrow.status == "open" else 2.0, _EscrowCheck(escrow_id=msg.escrow_id))

    def _check_release(self, ctx: Context, escrow: EscrowState, record: dict[str, Any]) -> None:
        """The amounts a release pays are the caller's to choose (the ledger checks only that
        they fit the escrow's lines): one that paid less than the call's bill is held against the
        caller, who gets no escrowed call here again and is rated down for the shortfall in the
        one reputation graph (the owner's line counts too: the bill is the whole call)."""
        paid, due = ctx.ledger.released(escrow.escrow_id, record["from_block"]), self.price_per_call  # the bill's lines sum to the price
        if paid is None or paid >= due:
            return
        buyer = escrow.buyer.lower()
        self.shorted[buyer] = self.shorted.get(buyer, 0) + due - paid
        ctx.registry.rate(self.address, escrow.buyer, False, due - paid, "model", deal_id=escrow.escrow_id)  # a party to that escrow
        ctx.log.warning("escrowed call %s: its caller %s released %d of a %d bill; it gets no more escrowed calls", escrow.escrow_id, escrow.buyer, paid, due)

    def shortfall(self, caller: str) -> int:
        """What ``caller``'s releases of escrowed calls here left unpaid (0: none)."""
        return self.shorted.get(caller.lower(), 0)

    def _claim_escrow(self, ctx: Context, escrow_id: str, record: dict[str, Any], escrow: EscrowState) -> None:
        if ctx.ledger.arbiter not in ctx.registry.agents():  # frozen with nobody to rule, the money would be stuck
            ctx.log.warning("escrowed call %s: no arbiter agent runs here; its deadline refunds the caller", escrow_id)
            record["status"] = "unclaimed"
            return
        if escrow.status == "open":
            ctx.wallet.dispute(escrow_id)
        record["status"] = "claimed"
        ctx.send(
            ctx.ledger.arbiter,
            Claim(
                deal_id=escrow_id,
                job=record["job"],
                result=record["result"],
                provider=self.address,
                cost=self.price_per_call,
                authorization=record.get("authorization", ""),
            ),
        )

    @on_message(Ruling)
    def ruled(self, ctx: Context, sender: str, msg: Ruling) -> None:
        if msg.deal_id not in self.escrowed or sender.lower() != str(ctx.ledger.arbiter).lower():
            refuse(self, ctx, sender, NotAParty(f"{sender} is not the arbiter ruling on an escrowed call {msg.deal_id} of mine"))
            return
        self.escrowed[msg.deal_id]["status"] = "ruled"  # the next check reads what the ruling did on the ledger

    def escrow_status(self, escrow_id: str) -> str:
        """running, answered, claimed (before the arbiter), ruled, unclaimed (no arbiter runs), or done."""
        record = self.escrowed.get(escrow_id)
        return record["status"] if record else "done"

    def _receiver(self, ctx: Context, channel_id: str, sender: str) -> ChannelReceiver:
        receiver = self.receivers.get(channel_id)
        if receiver is None:
            state = ctx.ledger.channel(channel_id)
            # who carries the call does not matter (a gateway relays its HTTP callers' calls): the
            # voucher pays, and ChannelReceiver accepts only the channel's sender's signature on it
            if state.recipient.lower() != self.address.lower():
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
        self.refused: dict[str, int] = {}  # reason -> messages refused from the wrong sender

    def on_start(self, ctx: Context) -> None:
        ctx.wallet.open_account()
        offers = [r for r in ctx.registry.search("model-call", ctx.now(), max_price=self.deposit) if r.terms.get("name") == self.model]
        if not offers:
            self.refusals.append(f"no served model named {self.model!r} within the deposit")
            return
        self.server, self.price = offers[0].address, offers[0].price  # the cheapest
        self.channel_id = owned_id(self.address, self.server, ctx.now())  # ours alone: nobody can open it first
        ctx.wallet.open_channel(
            ChannelTerms(channel_id=self.channel_id, recipient=self.server, amount=self.deposit, expiration=int(ctx.ledger.now()) + self.channel_seconds)
        )
        self._next(ctx)

    def _next(self, ctx: Context) -> None:
        if self.sent >= self.calls or self.owed + self.price > self.deposit:
            return
        self.owed += self.price
        state = ctx.ledger.channel(self.channel_id)
        # vouchers count from the last claim: a claim pays out of the deposit and moves the nonce on
        amount = self.owed - (self.deposit - state.deposit)
        signature = ctx.wallet.sign_typed_data(voucher_typed_data(ctx.ledger.domains()["channel"], self.channel_id, state.nonce, amount))
        ctx.send(
            self.server,
            CallModel(call_id=self.sent, inputs=self.inputs, channel_id=self.channel_id, amount=amount, signature=signature, sent_at=time.perf_counter()),
        )
        self.sent += 1

    @on_message(CallAnswer)
    def answered(self, ctx: Context, sender: str, msg: CallAnswer) -> None:
        if sender != self.server:
            refuse(self, ctx, sender, NotAParty(f"{sender} is not the server {self.server} this caller called"))
            return
        self.latencies.append(time.perf_counter() - msg.sent_at)
        self.answers.append(msg.result)
        self._next(ctx)

    @on_message(CallRefused)
    def call_refused(self, ctx: Context, sender: str, msg: CallRefused) -> None:
        if sender != self.server:
            refuse(self, ctx, sender, NotAParty(f"{sender} is not the server {self.server} this caller called"))
        else:
            self.owed -= self.price  # not served, not owed: the next voucher does not count it
            self.refusals.append(msg.reason)

    def done(self) -> bool:
        return bool(self.refusals) and not self.channel_id or len(self.answers) + len(self.refusals) >= self.calls
