"""Data vaults: a data owner's datasets, used on the owner's terms without being given away.

A dataset sold compute-to-data never enters the shared content store. It sits in its owner's
vault (a private store on the owner's node); a job that reads it runs *there* — in process for a
simulation, or as a Ray task pinned to the vault's node by node affinity on a cluster — and only
the job's result leaves. Each dataset has an :class:`AccessPolicy`: the price per use, which
models and tasks may touch it, and whether a raw download is allowed at all. Every attempt,
granted or refused, is written to the vault's access log for the owner.

A use must be paid for (issue 19, item 5), and paid *at use*: a fee paid only at settlement
could be withheld (the buyer chooses its release amounts, a provider may refund). A vault that a
runtime opened reads the ledger: it runs a job only under a deal (an escrow) that covers it —
open and requested by its provider (payee 0), or disputed and requested by the ledger's arbiter
(its re-run) — whose lines pay the vault's owner at least its price per use (to the basis point:
the contract's own rounding of shares), at most ``uses_per_deal`` times per deal; and it hands
the result over only once the owner's line has been drawn (``Escrow.draw``: paid now, kept
whatever the deal's end). Until then the result is held (:class:`ResultHeld`, naming the line
to draw) and the same request, made again after the draw, collects it without running again —
so a job that fails costs nobody the fee, and no result leaves unpaid. The job names its deal, or the vault finds
the newest one that covers the requester. Who the requester is comes from the agent's executor
face (in process) or from the agent's signature over the request (a Ray vault, which any client
of the cluster can call), so the access log names the real requester and the deal. A vault with
no ledger (a standalone tool, not a market) checks the policy only.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agora.chain.crypto import keccak256
from agora.tasks.errors import TasksError
from agora.tasks.jobs import MODEL_KINDS, JobResult, JobSpec
from agora.tasks.store import ContentStore

BPS = 10_000
FALLBACK_SCAN = 64
"""A job that does not name its deal is matched against this many of the newest escrows: the
deal that pays for a job was opened just before it runs."""


class AccessDenied(TasksError, PermissionError):
    """A use of a dataset its policy does not allow (the model, the task, a raw download)."""


class UnpaidUse(AccessDenied):
    """A job no paid deal covers: none named or found, one that pays the owner less than its
    price, one the requester is not the provider (or arbiter) of, or one whose uses are spent."""


class ResultHeld(UnpaidUse):
    """The job ran; its result is held until the deal's provider draws the owner's line
    (``line``) of deal ``deal_id``, and is handed over when the same request is made again."""

    def __init__(self, message: str, deal_id: str = "", line: int = 0) -> None:
        super().__init__(message)
        self.deal_id, self.line = deal_id, line

    def __reduce__(self) -> tuple[Any, ...]:  # crosses Ray with its fields
        return (type(self), (str(self), self.deal_id, self.line))


HELD_PER_REQUESTER = 16  # results awaiting their draw, per requester: past this its own oldest goes


class ForgedRequest(AccessDenied):
    """A request to a vault not signed by the requester it names."""


def request_digest(vault: str, spec: JobSpec, deal_id: str | None, requester: str) -> bytes:
    """What a requester signs to ask ``vault`` to run ``spec`` under ``deal_id``."""
    return keccak256(f"agora-vault-request\n{vault}\n{spec.digest()}\n{(deal_id or '').lower()}\n{requester.lower()}".encode())


class AccessPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    price_per_use: int = Field(ge=0)
    models: list[str] | None = Field(default=None, description="model hashes allowed to read it; None: any")
    tasks: list[str] = Field(
        default_factory=lambda: ["embedding", "classification", "generation"],
        description="kinds of model that may read it (of tasks.jobs.MODEL_KINDS); a kind registered later is admitted only when named",
    )
    raw_download: bool = Field(default=False, description="False: compute-to-data only, the rows never leave")

    @field_validator("tasks")
    @classmethod
    def _known_kinds(cls, v: list[str]) -> list[str]:
        unknown = sorted(set(v) - MODEL_KINDS)
        if unknown:
            raise ValueError(f"no model kind {', '.join(unknown)}: the kinds are {', '.join(sorted(MODEL_KINDS))}")
        return v


AccessAction = Literal["compute", "download"]


class AccessRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    at: float
    requester: str
    dataset_hash: str
    action: AccessAction
    granted: bool
    reason: str = ""
    job_id: str = ""
    model_hash: str = ""
    task: str = ""
    items: int = 0
    result_hash: str = ""
    deal_id: str = ""


class DataVault:
    """The owner's private store of datasets, their policies and the access log. A plain class:
    a Ray deployment hosts it in an actor on the owner's node (see tasks.executor)."""

    def __init__(self, owner: str, root: str | Path, store_root: str | Path, ledger: Any = None, uses_per_deal: int = 2) -> None:
        self.owner = owner
        self.private = ContentStore(root)  # the rows live here only
        self.store_root = str(store_root)  # models come from the shared store
        self.policies: dict[str, AccessPolicy] = {}
        self.log: list[AccessRecord] = []
        self._lock = threading.Lock()
        self.ledger = ledger  # a ledger reader: None only for a standalone vault (policy checks only)
        self.uses_per_deal = uses_per_deal  # the provider's run and the arbiter's re-run
        self.uses: dict[str, int] = {}  # deal id -> uses granted under it
        self._scanned = 0
        self._escrows: list[str] = []  # escrow ids seen opened on the ledger, oldest first
        # (requester, spec digest) -> (deal, result, price in force when it ran), awaiting the draw
        self.held: dict[tuple[str, str], tuple[str, JobResult, int]] = {}

    def add(self, texts: list[str], name: str, policy: AccessPolicy | dict[str, Any]) -> str:
        """Store ``texts`` as a JSONL dataset under ``policy``; returns its hash."""
        data = "".join(json.dumps({"text": t}) + "\n" for t in texts).encode()
        digest = self.private.put_bytes(data, f"{name}.jsonl")
        self.policies[digest] = policy if isinstance(policy, AccessPolicy) else AccessPolicy.model_validate(policy)
        return digest

    def holds(self, digest: str) -> bool:
        return digest in self.policies

    def check(self, spec: JobSpec, requester: str) -> AccessPolicy:
        """The policy that allows ``spec`` to read its dataset, or AccessDenied (logged)."""
        digest = spec.dataset_hash or ""
        policy = self.policies.get(digest)
        reason = ""
        if policy is None:
            reason = f"this vault holds no dataset {digest[:12]}…"
        elif policy.models is not None and spec.model_hash not in policy.models:
            reason = f"model {spec.model_hash[:12]}… may not read this dataset"
        elif spec.task not in policy.tasks:
            reason = f"task {spec.task} is not allowed on this dataset"
        if reason:
            self._record(requester, digest, "compute", False, reason, spec)
            raise AccessDenied(reason)
        assert policy is not None
        return policy

    def run(self, spec: JobSpec, requester: str, runner: Any = None, deal_id: str | None = None) -> JobResult:
        """Run ``spec`` against the dataset here and return only its result, if the policy allows
        it and a paid deal covers it. ``runner`` runs the job (default: in this process); a Ray
        vault passes one pinned to its own node."""
        from agora.tasks.run import run_job

        key = (requester.lower(), spec.digest())
        with self._lock:
            waiting = self.held.get(key)
        if waiting is not None and (deal_id is None or waiting[0].lower() == deal_id.lower()):
            deal, result, price = waiting  # it ran under the policy then in force: only the draw is checked now
        else:
            policy = self.check(spec, requester)
            deal, price = self.covered(spec, requester, policy, deal_id), policy.price_per_use
            try:
                result = (runner or run_job)(spec, self.store_root, str(self.private.root))
            except TasksError as exc:
                self._record(requester, spec.dataset_hash or "", "compute", False, f"job failed: {exc}", spec, deal_id=deal)
                raise
        self._hand_over(key, deal, result, price)
        self._record(requester, spec.dataset_hash or "", "compute", True, "", spec, result, deal_id=deal)
        return result

    def _hand_over(self, key: tuple[str, str], deal: str, result: JobResult, price: int) -> None:
        """Return if the owner's lines of ``deal`` drew its ``price`` (the result may leave); else
        hold the result and raise ResultHeld naming the next line of the owner's to draw."""
        if self.ledger is None:
            return
        escrow = self.ledger.escrow(deal)
        drawn = escrow.drawn_line(self.owner)
        if drawn and drawn * BPS + escrow.amount >= price * BPS:
            with self._lock:
                self.held.pop(key, None)
            return
        line = next((i for i in escrow.drawable if escrow.payees[i].lower() == self.owner.lower() and not escrow.lines_drawn[i]), 0)
        if not line:  # nothing left the provider may draw: this deal cannot pay for the result
            with self._lock:
                self.held.pop(key, None)
            raise UnpaidUse(f"deal {deal} drew {drawn} for the owner, under its price of {price}, and has no line of the owner's left to draw")
        with self._lock:
            self.held.pop(key, None)
            self.held[key] = (deal, result, price)
            mine = [k for k in self.held if k[0] == key[0]]
            for old in mine[: max(0, len(mine) - HELD_PER_REQUESTER)]:  # a requester crowds out only its own
                del self.held[old]
        raise ResultHeld(f"the result of job {result.job_id} is held until line {line} of deal {deal} (the owner's fee) is drawn; then ask again", deal, line)

    def covered(self, spec: JobSpec, requester: str, policy: AccessPolicy, deal_id: str | None) -> str:
        """The deal that pays for this use (its use counted), or UnpaidUse (logged). The ledger
        is read outside the vault's lock; only the count of uses is taken under it."""
        if self.ledger is None:
            return deal_id or ""
        why = f"no open deal of {requester}'s among the newest {FALLBACK_SCAN} pays this vault's owner for a use"
        for candidate in [deal_id] if deal_id else self._candidates()[:FALLBACK_SCAN]:
            reason = self._uncovered(candidate, requester, policy)
            if not reason:
                with self._lock:
                    used = self.uses.get(candidate.lower(), 0)
                    if used < self.uses_per_deal:
                        self.uses[candidate.lower()] = used + 1
                        return candidate
                reason = f"deal {candidate} has used its {self.uses_per_deal} runs"
            if deal_id:
                why = reason
        self._record(requester, spec.dataset_hash or "", "compute", False, why, spec, deal_id=deal_id or "")
        raise UnpaidUse(why)

    def _uncovered(self, deal_id: str, requester: str, policy: AccessPolicy) -> str:
        """Why escrow ``deal_id`` does not pay for ``requester``'s use ("" if it does)."""
        try:
            escrow = self.ledger.escrow(deal_id)
        except Exception as exc:  # noqa: BLE001 - an unknown or malformed id: no deal
            return f"no deal {deal_id} on the ledger ({type(exc).__name__})"
        who, arbiter = requester.lower(), str(getattr(self.ledger, "arbiter", "") or "").lower()
        if not ((escrow.status == "open" and who == escrow.payees[0].lower()) or (escrow.status == "disputed" and who == arbiter)):
            return f"deal {deal_id} is {escrow.status}: only its provider (open) or the arbiter (disputed) may use it"
        mine = [i for i in escrow.drawable if escrow.payees[i].lower() == self.owner.lower()]
        share = sum(escrow.shares_bps[i] for i in mine)
        if share == 0 or share < policy.price_per_use * BPS // escrow.amount:
            return f"deal {deal_id} lets its provider pay the owner {escrow.amount * share // BPS} at use, under its price of {policy.price_per_use}"
        return ""

    def _candidates(self) -> list[str]:
        """Escrows opened on the ledger, newest first (read from its events where it left off)."""
        head = self.ledger.block_number()
        if head >= self._scanned:
            self._escrows += [str(e.args.get("deal_id")) for e in self.ledger.events(self._scanned) if e.kind == "Opened"]
            self._scanned = head + 1
        return self._escrows[::-1]

    def download(self, digest: str, requester: str) -> bytes:
        """The raw rows, only where the policy allows a download."""
        policy = self.policies.get(digest)
        if policy is None or not policy.raw_download:
            reason = "no such dataset" if policy is None else "compute-to-data only: the rows never leave the vault"
            self._record(requester, digest, "download", False, reason)
            raise AccessDenied(reason)
        self._record(requester, digest, "download", True)
        return self.private.file(digest).read_bytes()

    def access_log(self, digest: str | None = None) -> list[AccessRecord]:
        with self._lock:
            return [r for r in self.log if digest in (None, r.dataset_hash)]

    def _record(
        self,
        requester: str,
        digest: str,
        action: AccessAction,
        granted: bool,
        reason: str = "",
        spec: JobSpec | None = None,
        result: JobResult | None = None,
        deal_id: str = "",
    ) -> None:
        record = AccessRecord(
            at=time.time(),
            requester=requester,
            dataset_hash=digest,
            action=action,
            granted=granted,
            reason=reason,
            job_id=spec.job_id if spec else "",
            model_hash=spec.model_hash if spec else "",
            task=spec.task if spec else "",
            items=result.metering.items if result else 0,
            result_hash=result.result_hash if result else "",
            deal_id=deal_id,
        )
        with self._lock:
            self.log.append(record)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
