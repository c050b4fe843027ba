"""Who may write what in the registry (issue 19, item 2).

The registry is open to every agent, so every write must be made in the name of the agent that
makes it. An agent never holds the registry itself: its ``ctx.registry`` is a
:class:`RegistryFace` its host binds to its address and to the role the operator gave it (the
class the host runs). Reads pass straight through (searches are hot); each write is checked
first by :func:`check_write`: the offer's owner, the record's, heartbeat's, withdrawal's and
cohort's address and the rater must be the writer, a registered role must be the one given, and
a rating needs a settled deal between rater and ratee on the ledger (:func:`settled_deal`). On
Ray the same check runs in the registry actor on writes signed by the agent's key in its shard
(agora.agents.ray.registry), since a guest's shard runs code the deployment does not control.

A rating counts when it is backed by an escrow that is no longer open (released, refunded, or
disputed) and binds the two: the rater opened it and the ratee is a payee (a buyer rates its
provider and the owners it paid), the ratee opened it and the rater is a payee (a server rates a
caller that released short), or the rater is the ledger's arbiter and the ratee its provider
(payee 0) of an escrow that was disputed (one it ruled on). It weighs at most the escrow's
amount, and counts once per (rater, ratee, deal). A rating that names its deal (``deal_id``)
costs one escrow read; one that does not is matched against the escrows on the ledger (indexed
from the ledger's events, incrementally), which keeps older callers working.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agora.agents.registry import NotYourName, RatingRefused, Registry, RoleNotYours
from agora.chain.errors import ChainError
from agora.chain.types import EscrowState, id_owner

if TYPE_CHECKING:
    from agora.agents.registry import ComputeOffer, DatasetOffer, ModelOffer, ServiceRecord
    from agora.economy.reputation import MarketKind

READS = (
    "search",
    "count",
    "model",
    "dataset",
    "compute",
    "agents",
    "find_models",
    "find_datasets",
    "find_compute",
    "trust",
    "reputation_scores",
    "cohort_members",
    "role_of",
)
"""What an agent may read: everything it needs to find offers and judge peers, nothing that
hands out a mutable part of the registry (the reputation graph itself)."""

WRITES = ("register_model", "register_dataset", "register_compute", "register_agent", "register_service", "heartbeat", "withdraw", "rate", "register_cohort")

TRUSTED_ROLES = frozenset({"arbiter", "director"})
"""Roles that other agents act on by name alone (a buyer sends its claims to the arbiter, a
trader obeys the director's shocks): on Ray, an agent the operator did not give one of these
(a guest) may not take it."""


def _who(address: Any) -> str:
    return address.lower() if isinstance(address, str) else ""


def _named(name: str, args: tuple, kwargs: dict[str, Any]) -> str:
    """The address a write is made in the name of."""
    first = args[0] if args else None
    if name in ("register_model", "register_dataset", "register_compute"):
        return getattr(first if first is not None else kwargs.get("offer"), "owner", "")
    if name == "register_service":
        return getattr(first if first is not None else kwargs.get("record"), "address", "")
    key = {"register_agent": "address", "heartbeat": "address", "withdraw": "address", "register_cohort": "cohort", "rate": "rater"}[name]
    return first if first is not None else kwargs.get(key, "")


def check_name(writer: str, name: str, args: tuple, kwargs: dict[str, Any], role: str | None, trusted_roles: bool = True) -> None:
    """Refuse a write not in ``writer``'s name (NotYourName), or an agent registration under a
    role other than ``role`` (RoleNotYours; ``role`` None: not on the operator's roster, so any
    role but a trusted one, unless ``trusted_roles`` allows those too)."""
    if name not in WRITES:
        raise NotYourName(f"{name} is not a registry write an agent may make")
    named = _named(name, args, kwargs)
    if _who(named) != writer.lower():
        raise NotYourName(f"{writer} may not {name} in the name of {named!r}")
    if name == "register_agent":
        claimed = args[2] if len(args) > 2 else kwargs.get("role")
        if role is not None and claimed != role:
            raise RoleNotYours(f"{writer} was given the role {role!r}, not {claimed!r}")
        if role is None and not trusted_roles and claimed in TRUSTED_ROLES:
            raise RoleNotYours(f"{writer} was not given the role {claimed!r}: only the operator gives it")


class DealIndex:
    """Escrow ids by their opener (an escrow id begins with its opener's address) and the
    escrows ever disputed, read from the ledger's events from where it last stopped, so a
    rating that does not name its deal is matched without reading the whole chain each time."""

    def __init__(self) -> None:
        self.next_block = 0
        self.by_opener: dict[str, list[str]] = {}
        self.disputed: list[str] = []
        self.disputed_ids: set[str] = set()

    def update(self, ledger: Any) -> None:
        head = ledger.block_number()
        if head < self.next_block:
            return
        for event in ledger.events(self.next_block):
            deal = str(event.args.get("deal_id", ""))
            if event.kind == "Opened":
                try:
                    self.by_opener.setdefault(id_owner(deal).lower(), []).append(deal)
                except ChainError:
                    continue
            elif event.kind == "Disputed":
                self.disputed.append(deal)
                self.disputed_ids.add(deal.lower())
        self.next_block = head + 1

    def candidates(self, rater: str, ratee: str, arbiter: bool) -> list[str]:
        """Escrows that may bind ``rater`` and ``ratee``, newest first."""
        found = self.by_opener.get(rater.lower(), []) + self.by_opener.get(ratee.lower(), []) + (self.disputed if arbiter else [])
        return list(dict.fromkeys(reversed(found)))


def deal_index(registry: Any) -> DealIndex:
    """The one index kept beside ``registry`` (its ratings are checked against one ledger)."""
    index = registry.__dict__.get("_deal_index")
    if index is None:
        index = registry.__dict__["_deal_index"] = DealIndex()
    return index


def binds(escrow: EscrowState, rater: str, ratee: str, amount: int, arbiter: str | None, index: DealIndex) -> str:
    """Why ``escrow`` does not back a rating of ``ratee`` by ``rater`` weighing ``amount`` ("" if
    it does). The arbiter's rating needs an escrow that was disputed (it ruled on it)."""
    if escrow.status == "open":
        return f"deal {escrow.escrow_id} is still open: rate it once it is settled, refunded or disputed"
    if amount > escrow.amount:
        return f"a rating of {amount} weighs more than deal {escrow.escrow_id} ({escrow.amount})"
    buyer, payees, r, e = escrow.buyer.lower(), [p.lower() for p in escrow.payees], rater.lower(), ratee.lower()
    if (r == buyer and e in payees) or (e == buyer and r in payees):
        return ""
    if r == _who(arbiter) and e == payees[0] and escrow.escrow_id.lower() in index.disputed_ids:
        return ""
    return f"deal {escrow.escrow_id} is not between {rater} and {ratee}"


def agreed(escrow: EscrowState, rater: str, ratee: str, ledger: Any, contract: Any, signature: str) -> str:
    """Why a buyer's rating against a payee of its escrow is not backed by the payee's own
    signature ("" if it is, or if the rating is not one of those). A buyer opens an escrow naming
    anyone: without the ratee's signature over the deal, funding an escrow that names an honest
    provider and refunding it would be enough to rate that provider down. The payee that signs
    an Agora deal is its provider (``economy.Contract``, the contract of the escrow on this
    ledger); a payee that signed nothing is rated down by no buyer."""
    if rater.lower() != escrow.buyer.lower() or ratee.lower() == escrow.buyer.lower():
        return ""  # a payee rating the buyer who funded it: the escrow is the buyer's own act
    from agora.economy.contract import Contract
    from agora.economy.errors import EconomyError

    if contract is None:
        return f"a rating against {ratee} needs the contract of deal {escrow.escrow_id} that {ratee} signed"
    if type(contract) is not Contract:  # what crossed a process boundary is rebuilt from its fields, never trusted as an object
        return f"a rating's contract must be an economy Contract, not {type(contract).__name__}"

    why = contract.unlike(escrow, ledger)
    if why:
        return f"the contract given is not the one escrow {escrow.escrow_id} was opened for: {why}"
    if contract.provider.lower() != ratee.lower():
        return f"{ratee} is not the provider of deal {escrow.escrow_id}, the party that signed it"
    try:
        contract.verify_signature(signature, ratee)
    except EconomyError as exc:
        return f"the contract of deal {escrow.escrow_id} is not signed by {ratee}: {exc}"
    return ""


def settled_deal(
    registry: Any,
    ledger: Any,
    index: DealIndex,
    rater: str,
    ratee: str,
    amount: int,
    deal_id: str | None,
    verified: bool = True,
    contract: Any = None,
    signature: str = "",
) -> str:
    """The deal that backs this rating (RatingRefused if none): ``deal_id``'s escrow (the
    contract's, if one is given), or the newest escrow between the two that this rater has not
    rated ``ratee`` for yet. A buyer's rating against a payee needs the contract the payee signed
    (:func:`agreed`)."""
    arbiter = getattr(ledger, "arbiter", None)
    if deal_id is None and contract is not None:
        deal_id = contract.deal_id
    if _who(rater) == _who(arbiter):  # only its rulings count: which escrows were disputed is in the events
        index.update(ledger)
    if deal_id is not None:
        try:
            escrow = ledger.escrow(deal_id)
        except ChainError as exc:
            raise RatingRefused(f"no deal {deal_id} on the ledger: {exc}") from None
        why = binds(escrow, rater, ratee, amount, arbiter, index) or ("" if verified else agreed(escrow, rater, ratee, ledger, contract, signature))
        if why:
            raise RatingRefused(why)
        if registry.has_rated(rater, ratee, deal_id):
            raise RatingRefused(f"{rater} already rated {ratee} for deal {deal_id}")
        return deal_id
    index.update(ledger)
    for candidate in index.candidates(rater, ratee, _who(rater) == _who(arbiter)):
        escrow = ledger.escrow(candidate)
        if registry.has_rated(rater, ratee, candidate) or binds(escrow, rater, ratee, amount, arbiter, index):
            continue
        if verified or not agreed(escrow, rater, ratee, ledger, None, ""):
            return candidate
    signed = "" if verified else f" (against a payee: under a contract {ratee} signed, given with the rating)"
    raise RatingRefused(f"no settled deal between {rater} and {ratee} that {rater} has not rated already{signed}")


class RegistryFace:
    """An agent's ``ctx.registry``: the registry's reads, and its writes in the agent's own name.

    ``role`` is the role the operator gave the agent; ``ledger`` the agent's read-only ledger,
    on which ratings are checked; ``sink(name, args, kwargs)`` makes a checked write (by default
    on ``registry`` itself; a Ray shard signs and batches it instead, and the registry actor
    checks it again)."""

    def __init__(self, registry: Any, address: str, role: str, ledger: Any, sink: Callable[[str, tuple, dict], Any] | None = None) -> None:
        self._registry, self._address, self._role, self._ledger = registry, address, role, ledger
        self._sink = sink
        for name in READS:  # bound once: a search through the face costs what it costs on the registry
            setattr(self, name, getattr(registry, name))

    if TYPE_CHECKING:  # the reads (READS), bound from the registry in __init__: Registry's signatures

        def search(
            self,
            capability: str,
            now: float,
            *,
            max_price: int | None = None,
            protocol: str | None = None,
            min_reputation: float | None = None,
            viewer: str | None = None,
        ) -> list[ServiceRecord]: ...
        def count(self, capability: str, now: float) -> int: ...
        def model(self, model_hash: str) -> ModelOffer: ...
        def dataset(self, dataset_hash: str) -> DatasetOffer: ...
        def compute(self, provider: str) -> ComputeOffer: ...
        def agents(self) -> dict[str, dict[str, str]]: ...
        def find_models(self, task: str = "embedding", name: str | None = None) -> list[ModelOffer]: ...
        def find_datasets(self, name: str | None = None) -> list[DatasetOffer]: ...
        def find_compute(self, gpus: float = 0.0, gpu_memory_mb: int = 0, cpus: float = 0.0) -> list[ComputeOffer]: ...
        def trust(self, viewer: str, among: list[str]) -> dict[str, float]: ...
        def reputation_scores(self, viewer: str | None = None) -> dict[str, float]: ...
        def cohort_members(self, cohort: str) -> list[tuple[str, str]]: ...
        def role_of(self, address: str) -> str | None: ...

    def _write(self, name: str, args: tuple, kwargs: dict[str, Any]) -> Any:
        check_name(self._address, name, args, kwargs, self._role)
        if self._sink is not None:
            return self._sink(name, args, kwargs)
        return getattr(self._registry, name)(*args, **kwargs)

    def register_model(self, offer: Any) -> str:
        return self._write("register_model", (offer,), {})

    def register_dataset(self, offer: Any) -> str:
        return self._write("register_dataset", (offer,), {})

    def register_compute(self, offer: Any) -> str:
        return self._write("register_compute", (offer,), {})

    def register_agent(self, address: str, name: str, role: str) -> None:
        return self._write("register_agent", (address, name, role), {})

    def register_service(self, record: Any, now: float) -> Any:
        return self._write("register_service", (record, now), {})

    def heartbeat(self, address: str, now: float) -> int:
        return self._write("heartbeat", (address, now), {})

    def withdraw(self, address: str, capability: str | None = None) -> int:
        return self._write("withdraw", (address, capability), {})

    def register_cohort(self, cohort: str, members: list[str], delegations: list[str]) -> None:
        return self._write("register_cohort", (cohort, members, delegations), {})

    def rate(
        self,
        rater: str,
        ratee: str,
        verified: bool,
        amount: int = 1,
        market: MarketKind = "any",
        deal_id: str | None = None,
        contract: Any = None,
        signature: str = "",
    ) -> None:
        """Rate ``ratee`` for a deal with it (``deal_id``: its escrow id; found on the ledger
        when not given). Refused (RatingRefused) without a settled deal between the two, and a
        buyer's rating against a payee without the ``contract`` that payee signed (its
        ``signature``)."""
        check_name(self._address, "rate", (rater,), {}, self._role)
        if self._sink is not None:  # the registry actor checks the deal on the ledger; the contract travels as data
            sent = None if contract is None else contract.model_dump(mode="json")
            return self._sink("rate", (rater, ratee, verified, amount, market), {"deal_id": deal_id, "contract": sent, "signature": signature})
        found = settled_deal(self._registry, self._ledger, deal_index(self._registry), rater, ratee, amount, deal_id, verified, contract, signature)
        return self._registry.rate(rater, ratee, verified, amount, market, deal_id=found)


def face(registry: Registry | Any, agent: Any, ledger: Any) -> RegistryFace:
    """``agent``'s face of ``registry`` (one that knows how to make faces, a Ray shard's batching
    registry, makes its own)."""
    make = getattr(registry, "face", None)
    if make is not None:
        return make(agent, ledger)
    return RegistryFace(registry, agent.address, type(agent).role, ledger)
