"""The gateway as an agent: it relays HTTP callers' paid calls into the market.

A caller outside the market (no Ray, no Python, only an HTTP client and a key) has opened a
payment channel on the ledger to a model server and signed a voucher for the call. The gateway
agent checks the channel is that caller's and goes to that server, then sends the call on as
an ordinary :class:`~agora.agents.roles.serving.CallModel` message. The server checks the voucher
itself (the caller's signature pays, not the gateway's word), runs the job and answers the
gateway, which files the answer under the caller's job. The gateway holds no caller's money
and signs nothing for them: it only carries messages, so a gateway that lies can refuse to
relay but never spend.

A call may be paid by an escrow instead (``relay_escrow``): the caller opened it for this one
call (agora.agents.billing.escrow_terms), the gateway checks it is the caller's and pays that
server, and the server checks the rest on the ledger. The job is settled when the caller, having
checked the answer, releases the bill; disputed when it (or the server, near the deadline) froze
the escrow for the arbiter; refunded when the money went back.

The app reads the payment's state on the ledger before it asks the agent, outside the market's
lock (a slow node then holds up that one request, not the market), and hands it over with the
ticket; the agent checks it is the caller's and pays the called server.

Each job keeps its journey (relayed, answered or refused, settled when the server's claim of
that voucher or the escrow's release is on the ledger) for the job endpoint and the explorer.
"""

from __future__ import annotations

import itertools
import time
from typing import Any, Literal

from pydantic import BaseModel, Field

from agora.agents.agent import Agent, Context, on_interval, on_message
from agora.agents.billing import escrow_bill
from agora.agents.deal_protocol import refuse
from agora.agents.errors import NotAParty
from agora.agents.identity import Identity
from agora.agents.registry import ServiceRecord
from agora.agents.roles.serving import CallAnswer, CallModel, CallRefused, EscrowedCall
from agora.chain import ChainError
from agora.chain.offchain import call_authorization_typed_data, recover
from agora.chain.types import ChannelState, EscrowState
from agora.gateway.errors import NotFound, PaymentRefused
from agora.tasks.jobs import JobResult

JobStatus = Literal["relayed", "answered", "refused", "disputed", "refunded", "settled"]
FINAL: frozenset[str] = frozenset({"refused", "refunded", "settled"})


class JobStep(BaseModel):
    step: str
    at: float = Field(description="ledger time (unix seconds)")
    detail: str = ""
    tx: str | None = Field(default=None, description="transaction hash, where the step is on the ledger")


class GatewayJob(BaseModel):
    """One caller's paid call, as the job endpoint shows it."""

    job_id: str
    caller: str
    service: str = Field(description="the model server's address")
    model: str
    payment: Literal["channel", "escrow"] = "channel"
    channel_id: str = Field(default="", description="the channel a voucher pays from (channel payment)")
    nonce: int = Field(default=0, description="the channel's nonce the voucher is for (a claim moves it on)")
    amount: int = Field(default=0, description="the voucher's cumulative amount since the channel's last claim")
    escrow_id: str = Field(default="", description="the escrow that pays (escrow payment)")
    release: list[int] = Field(default=[], description="escrow payment: what to release to each payee once the answer checks out (release_items)")
    price: int = Field(description="what this call costs: the server's fee and the owner's royalty")
    inputs: int
    status: JobStatus = "relayed"
    reason: str = ""
    result: JobResult | None = None
    claim_tx: str | None = Field(default=None, description="the server's claim of this call's voucher, or the escrow's release, once settled")
    paid: int | None = Field(
        default=None, description="escrow payment: what the escrow paid out in all, once released (the caller's release, or the arbiter's ruling)"
    )
    steps: list[JobStep] = []
    from_block: int = Field(default=0, exclude=True)  # escrow payment: the block the call was relayed at (its release comes after)


class CallTicket(BaseModel):
    """What the app hands the agent to relay (already authenticated and checked for shape), with
    the channel's state as the app read it from the ledger."""

    caller: str
    service: str
    inputs: list[str] = Field(min_length=1)
    channel: ChannelState
    amount: int = Field(ge=0)
    signature: str


class EscrowTicket(BaseModel):
    """A call paid by an escrow, with the escrow's state and the block the app read it at."""

    caller: str
    service: str
    inputs: list[str] = Field(min_length=1)
    escrow: EscrowState
    from_block: int = Field(ge=0)
    authorization: str


def model_call_service(registry: Any, now: float, address: str, field: str | None = None) -> ServiceRecord:
    """The live model-call service listed at ``address``; NotFound (naming ``field``) when there is none."""
    for record in registry.search("model-call", now):
        if record.address.lower() == address.lower():
            return record
    raise NotFound(f"no live model-call service at {address}", field)


def _theirs_for(payment: str, payer: str, payee: str, caller: str, service: str, field: str, rank: str = "") -> None:
    """PaymentRefused (naming ``field``) unless ``payment`` is the caller's money and pays the called service."""
    if payer.lower() != caller.lower():
        raise PaymentRefused(f"{payment} is {payer}'s, not the caller's ({caller})", field)
    if payee.lower() != service.lower():
        raise PaymentRefused(f"{payment} pays {payee}{rank}, not the service {service}", field)


class GatewayAgent(Agent):
    """Relays signed, paid calls from HTTP callers to model servers and tracks their jobs."""

    role = "gateway"

    def __init__(self, name: str, identity: Identity, keep: int = 10_000) -> None:
        super().__init__(name, identity)
        self.jobs: dict[str, GatewayJob] = {}
        self.keep = keep
        self._unclaimed: set[str] = set()  # answered jobs whose voucher the server has not claimed yet (or escrow not released)
        self._escrows: set[str] = set()  # escrows that paid a job here (one call each)
        self._ids = itertools.count(1)
        self._ctx: Context | None = None
        self.refused: dict[str, int] = {}  # reason -> answers refused from anyone but the call's server

    def on_start(self, ctx: Context) -> None:
        self._ctx = ctx
        ctx.registry.register_agent(self.address, self.name, self.role)

    # -- called by the app (through the runtime's query) ------------------------------------
    def relay(self, ticket: dict[str, Any]) -> dict[str, Any]:
        """Check the payment's channel (its state as read by the app) and send the call on; the
        new job, as a dict. PaymentRefused or the registry's NotFound for a payment that cannot pay."""
        t = CallTicket.model_validate(ticket)
        ctx = self._context()
        service = model_call_service(ctx.registry, ctx.now(), t.service, "service")
        state = t.channel
        _theirs_for(f"channel {state.channel_id[:10]}…", state.sender, state.recipient, t.caller, t.service, "payment.channel_id")
        call_id = next(self._ids)
        call = CallModel(call_id=call_id, inputs=t.inputs, channel_id=state.channel_id, amount=t.amount, signature=t.signature, sent_at=time.time())
        return self._start(
            ctx,
            t.caller,
            t.service,
            service,
            call,
            f"voucher {t.amount} on nonce {state.nonce}",
            channel_id=state.channel_id,
            nonce=state.nonce,
            amount=t.amount,
        )

    def relay_escrow(self, ticket: dict[str, Any]) -> dict[str, Any]:
        """Check the escrow is the caller's and pays that server, then send the call on."""
        t = EscrowTicket.model_validate(ticket)
        ctx = self._context()
        service = model_call_service(ctx.registry, ctx.now(), t.service, "service")
        escrow = t.escrow
        _theirs_for(f"escrow {escrow.escrow_id[:10]}…", escrow.buyer, escrow.payees[0], t.caller, t.service, "payment.escrow_id", " first")
        if escrow.status != "open" or escrow.escrow_id in self._escrows:
            raise PaymentRefused(
                f"escrow {escrow.escrow_id[:10]}… is {escrow.status if escrow.status != 'open' else 'already paying a call'}; open one per call",
                "payment.escrow_id",
            )
        typed = call_authorization_typed_data(
            ctx.ledger.domains()["escrow"], escrow.escrow_id, t.service, str(service.terms.get("model_hash", "")), str(service.terms.get("task", "")), t.inputs
        )
        if (recover(typed, t.authorization) or "").lower() != escrow.buyer.lower():
            raise PaymentRefused(
                f"the authorization is not {escrow.buyer}'s signature over this escrow, server, model, task and inputs", "payment.authorization"
            )
        self._escrows.add(escrow.escrow_id)
        call = EscrowedCall(call_id=next(self._ids), inputs=t.inputs, escrow_id=escrow.escrow_id, sent_at=time.time(), authorization=t.authorization)
        return self._start(
            ctx,
            t.caller,
            t.service,
            service,
            call,
            f"escrow of {escrow.amount} until {escrow.deadline}",
            payment="escrow",
            escrow_id=escrow.escrow_id,
            release=escrow_bill(service)[1],
            from_block=t.from_block,
        )

    def _start(
        self, ctx: Context, caller: str, server: str, service: ServiceRecord, call: CallModel | EscrowedCall, paid: str, **payment: Any
    ) -> dict[str, Any]:
        """File the caller's new job (its payment in ``payment``) and send the call on."""
        job = GatewayJob(
            job_id=self._job_id(call.call_id),
            caller=caller,
            service=server,
            model=str(service.terms.get("name", "")),
            price=service.price,
            inputs=len(call.inputs),
            **payment,
        )
        job.steps.append(JobStep(step="relayed", at=ctx.now(), detail=f"{paid} to {service.name}"))
        self.jobs[job.job_id] = job
        self._trim()
        ctx.send(server, call)
        return job.model_dump(mode="json")

    def job(self, job_id: str) -> dict[str, Any] | None:
        found = self.jobs.get(job_id)
        return None if found is None else found.model_dump(mode="json")

    def recent_jobs(self, limit: int = 50) -> list[dict[str, Any]]:
        return [j.model_dump(mode="json", exclude={"result"}) for j in list(self.jobs.values())[-limit:]][::-1]

    # -- the servers' answers -----------------------------------------------------------------
    @on_message(CallAnswer)
    def answered(self, ctx: Context, sender: str, msg: CallAnswer) -> None:
        job = self._relayed(ctx, msg.call_id, sender)
        if job is None:
            return
        job.status, job.result = "answered", msg.result
        m = msg.result.metering
        job.steps.append(JobStep(step="answered", at=ctx.now(), detail=f"{msg.result.shape[0]} rows, {m.tokens} tokens, {m.seconds:.3f} s on {m.device}"))
        if msg.claim_tx:  # the server claimed this voucher before answering
            self._settle(ctx, job, msg.claim_tx)
        else:
            self._unclaimed.add(job.job_id)

    @on_message(CallRefused)
    def call_refused(self, ctx: Context, sender: str, msg: CallRefused) -> None:
        job = self._relayed(ctx, msg.call_id, sender)
        if job is None:
            return
        job.status, job.reason = "refused", msg.reason
        job.steps.append(JobStep(step="refused", at=ctx.now(), detail=msg.reason))

    @on_interval(1.0)
    def watch_claims(self, ctx: Context) -> None:
        """A job answered before its server claimed the voucher (servers claim every few calls)
        is settled once the channel's nonce moves past the job's; an escrowed one when its escrow
        is released (refunded or disputed as the ledger says). The claim's or the release's
        transaction is then found in the ledger's events by the app."""
        channels: dict[str, int] = {}
        for job in [self.jobs[j] for j in self._unclaimed]:  # only those waiting, not every job kept
            if job.payment == "escrow":
                self._watch_escrow(ctx, job)
                continue
            if job.channel_id not in channels:
                try:
                    channels[job.channel_id] = ctx.ledger.channel(job.channel_id).nonce
                except ChainError:
                    continue
            if channels[job.channel_id] > job.nonce:
                self._settle(ctx, job, None)

    def _watch_escrow(self, ctx: Context, job: GatewayJob) -> None:
        try:
            status = ctx.ledger.escrow(job.escrow_id).status
        except ChainError:
            return
        if status == job.status or status == "open":
            return
        if status == "released":
            job.paid = ctx.ledger.released(job.escrow_id, job.from_block)
            self._settle(ctx, job, None)
            return
        job.status = status  # disputed, refunded
        detail = "frozen for the arbiter's ruling" if status == "disputed" else "the whole lock went back to the caller"
        job.steps.append(JobStep(step=status, at=ctx.now(), detail=detail))
        if status == "refunded":
            self._unclaimed.discard(job.job_id)

    def _settle(self, ctx: Context, job: GatewayJob, tx: str | None) -> None:
        self._unclaimed.discard(job.job_id)
        ruled = " by the arbiter's ruling" if job.status == "disputed" else ""
        job.status, job.claim_tx = "settled", tx
        detail = f"the server claimed nonce {job.nonce}'s voucher on the ledger" if job.payment == "channel" else f"the escrow was released{ruled}"
        if job.payment == "escrow" and not ruled and job.paid is not None and job.paid < sum(job.release):
            detail += f", paying {job.paid} of the {sum(job.release)} bill: the server serves this caller no more escrowed calls"
        job.steps.append(JobStep(step="settled", at=ctx.now(), detail=detail, tx=tx))

    # -- helpers ------------------------------------------------------------------------------
    def _context(self) -> Context:
        if self._ctx is None:
            raise RuntimeError("the gateway agent has not started")
        return self._ctx

    def _job_id(self, call_id: int) -> str:
        return f"job-{call_id:06d}-{self.address[2:8].lower()}"

    def _relayed(self, ctx: Context, call_id: int, sender: str) -> GatewayJob | None:
        """The job of call ``call_id`` if ``sender`` is its server and it still awaits the answer;
        an answer from anyone else is refused and counted (``self.refused``)."""
        job = self.jobs.get(self._job_id(call_id))
        if job is None or job.service.lower() != sender.lower():
            refuse(self, ctx, sender, NotAParty(f"{sender} is not the server of a call {call_id} this gateway relayed"))
            return None
        return job if job.status == "relayed" else None  # its server answering again: nothing changes

    def _trim(self) -> None:
        while len(self.jobs) > self.keep:  # the oldest first (dicts keep insertion order)
            oldest = next(iter(self.jobs))
            self._escrows.discard(self.jobs.pop(oldest).escrow_id)  # the server still refuses a spent escrow
            self._unclaimed.discard(oldest)
