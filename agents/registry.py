"""The registry: one discovery service for models, datasets, compute providers and agents.

Owners publish offers; buyers look them up by capability. Offers are validated on the way in
(a negative or non-integer price is refused with InvalidOffer naming the field), and lookups of
unknown keys raise UnknownOffer. Later markets extend this registry; none adds a second one.

Services are discovery as Fetch.ai's Almanac does it: an agent registers what it offers
(capability, price, terms, where to reach it, the digests of the protocols it speaks) with a
time-to-live, and keeps it alive with heartbeats; a record not renewed in time drops out of
``search``, which filters by capability, price ceiling, protocol and minimum reputation. Time is
whatever clock the caller runs on (virtual in a simulation, wall time on a cluster).

The registry also keeps the one reputation graph every market feeds: buyers ``rate`` each
verified or failed delivery (compute, model or data), and ask for ``trust`` as they see it
(personalized PageRank from themselves and the pre-trusted agents), so work verified in one
market counts in all of them and a ring of fake accounts rating itself counts in none.

This class takes every write as given: it is the operator's (a runtime's ``registry``). An
agent writes through the face its host gives it (agents.registry_access), only in its own name,
under the role the operator gave it, and rates only a party to a settled deal; on Ray the
registry actor checks the agent's signature on each write (agora.agents.ray.registry). Here, two
rules hold for everyone: a model or dataset hash keeps its first owner (``ListingTaken``), and a
rating that names its deal counts once per (rater, ratee, deal) (``RatingRefused``).
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, ValidationError

from agora.agents.errors import AgentsError, InvalidOffer, UnknownOffer
from agora.chain.errors import ChainError
from agora.chain.types import check_address
from agora.economy.errors import EconomyError
from agora.economy.reputation import MarketKind, ReputationGraph, relative

_HASH = r"^[0-9a-f]{64}$"


class RegistryRefused(AgentsError, PermissionError):
    """A registry write that is not the writer's to make (issue 19). Subclasses say why."""


class NotYourName(RegistryRefused):
    """A write in another agent's name: an offer, record, heartbeat, withdrawal, cohort or rating
    whose address is not the writer's own (or a write whose signature is not the writer's)."""


class RoleNotYours(RegistryRefused):
    """A role the writer was not given: roles come from the operator (the class its host runs,
    the deployment's roster), never from the agent's own claim."""


class ListingTaken(RegistryRefused):
    """A model or dataset hash already listed by another owner: the first owner keeps it."""


class RatingRefused(RegistryRefused):
    """A rating with no settled deal between rater and ratee behind it, one that weighs more than
    that deal, or a second rating of the same deal."""


def _normalized(v: Any) -> str | None:
    """``v`` as a checksummed address (cached in chain.types: a big population looks the same
    addresses up all run), or None when it is not one."""
    try:
        return check_address(v)
    except ChainError:
        return None


def _checksum(v: Any) -> str:
    address = _normalized(v)
    if address is None:
        raise ValueError(f"not an address: {v!r}")
    return address


Address = Annotated[str, AfterValidator(_checksum)]


class _Record(BaseModel):
    """Base of what the registry stores: frozen, no unknown fields, and a validation failure is
    an InvalidOffer naming the record and the field."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise InvalidOffer(f"invalid {type(self).__name__}: {exc}") from None


class ServiceRecord(_Record):
    """One service an agent offers, as discovery lists it."""

    address: Address
    name: str = Field(min_length=1)
    capability: str = Field(min_length=1)
    price: StrictInt = Field(ge=0)
    terms: dict[str, str | int | float] = {}
    endpoint: str = ""
    protocols: dict[str, str] = {}
    ttl: float = Field(default=300.0, gt=0)
    last_seen: float = 0.0

    def alive(self, now: float) -> bool:
        return now <= self.last_seen + self.ttl


class Offer(_Record):
    """Base of every offer: frozen, strict about prices, with an owner address."""

    owner: Address


class ModelOffer(Offer):
    """A model for hire: content hash of its files, what it does, its price per call."""

    model_hash: str = Field(pattern=_HASH)
    name: str = Field(min_length=1)
    task: str = "embedding"
    price_per_call: StrictInt = Field(ge=0)
    price_per_1k_tokens: StrictInt = Field(default=0, ge=0, description="royalty per 1,000 tokens read or generated")
    license: str = ""


class DatasetOffer(Offer):
    """A dataset: content hash, size, price per use."""

    dataset_hash: str = Field(pattern=_HASH)
    name: str = Field(min_length=1)
    items: StrictInt = Field(ge=0)
    price_per_use: StrictInt = Field(ge=0)
    vault: str = Field(default="", description="compute-to-data: the vault jobs on it run in; empty: in the shared store")
    raw_download: bool = False
    models: list[str] | None = Field(default=None, description="model hashes allowed to read it; None: any")


class ComputeOffer(Offer):
    """A provider's capacity: GPUs (logical or real), their memory, CPUs, price per second."""

    gpus: float = Field(ge=0)
    gpu_memory_mb: StrictInt = Field(default=0, ge=0)
    cpus: float = Field(default=1.0, ge=0)
    price_per_second: StrictInt = Field(ge=0)
    throughput: float = Field(default=100.0, gt=0, description="items per second it expects to embed")


OfferT = TypeVar("OfferT", bound=Offer)
RecordT = TypeVar("RecordT", bound=_Record)


class Registry:
    """In-memory discovery. Plain class: a runtime may host it in a Ray actor."""

    def __init__(self, pretrusted: list[str] | None = None) -> None:
        self.reputation = ReputationGraph(_checksum(a) for a in pretrusted or [])
        self._models: dict[str, ModelOffer] = {}
        self._datasets: dict[str, DatasetOffer] = {}
        self._compute: dict[str, ComputeOffer] = {}
        self._agents: dict[str, dict[str, str]] = {}
        self._cohorts: dict[str, list[tuple[str, str]]] = {}
        self._services: dict[tuple[str, str], ServiceRecord] = {}  # (address, capability) -> record
        self._rated: set[tuple[str, str, str]] = set()  # (rater, ratee, deal id): one rating per deal

    # publish
    def register_model(self, offer: ModelOffer) -> str:
        """List a model; its owner may list it again (a new price), nobody else may: the first
        owner of a hash keeps it, so a stranger cannot re-list a model and take its fees."""
        self._models[_first_owner(self._models, _check(offer, ModelOffer).model_hash, offer)] = offer
        return offer.model_hash

    def register_dataset(self, offer: DatasetOffer) -> str:
        """List a dataset, under the same first-owner rule as models."""
        self._datasets[_first_owner(self._datasets, _check(offer, DatasetOffer).dataset_hash, offer)] = offer
        return offer.dataset_hash

    def register_compute(self, offer: ComputeOffer) -> str:
        self._compute[_check(offer, ComputeOffer).owner] = offer
        return offer.owner

    def register_agent(self, address: str, name: str, role: str) -> None:
        self._agents[_checksum(address)] = {"name": name, "role": role}

    # services: discovery with a time-to-live
    def register_service(self, record: ServiceRecord, now: float) -> ServiceRecord:
        """List (or replace) ``record``'s service, alive until ``now + ttl`` unless renewed."""
        record = _check(record, ServiceRecord).model_copy(update={"last_seen": float(now)})
        self._services[(record.address, record.capability)] = record
        return record

    def heartbeat(self, address: str, now: float) -> int:
        """Renew every service ``address`` offers; returns how many. Unknown agents raise."""
        key = _normalized(address) or address
        found = [k for k in self._services if k[0] == key]
        if not found:
            raise UnknownOffer(f"no services registered by {address!r}")
        for k in found:
            self._services[k] = self._services[k].model_copy(update={"last_seen": float(now)})
        return len(found)

    def withdraw(self, address: str, capability: str | None = None) -> int:
        """Remove an agent's services (one capability, or all); returns how many."""
        key = _normalized(address) or address
        gone = [k for k in self._services if k[0] == key and capability in (None, k[1])]
        for k in gone:
            del self._services[k]
        return len(gone)

    def expire(self, now: float) -> int:
        """Drop the records whose time-to-live ran out; returns how many."""
        dead = [k for k, r in self._services.items() if not r.alive(now)]
        for k in dead:
            del self._services[k]
        return len(dead)

    def count(self, capability: str, now: float) -> int:
        """How many live services offer ``capability``."""
        return sum(1 for (_, cap), r in self._services.items() if cap == capability and r.alive(now))

    def search(
        self,
        capability: str,
        now: float,
        *,
        max_price: int | None = None,
        protocol: str | None = None,
        min_reputation: float | None = None,
        viewer: str | None = None,
    ) -> list[ServiceRecord]:
        """Live services offering ``capability``, cheapest first (ties by address), filtered by
        price ceiling, a protocol digest they must speak, and reputation (0..1, relative to the
        most trusted agent as ``viewer`` sees it; an agent nobody rated has 0)."""
        found = [
            r
            for (_, cap), r in self._services.items()
            if cap == capability and r.alive(now) and (max_price is None or r.price <= max_price) and (protocol is None or protocol in r.protocols.values())
        ]
        if min_reputation is not None:
            scores = self.reputation_scores(viewer)
            found = [r for r in found if scores.get(r.address, 0.0) >= min_reputation]
        return sorted(found, key=lambda r: (r.price, r.address))

    # reputation
    def reputation_scores(self, viewer: str | None = None) -> dict[str, float]:
        """Every rated agent's trust in [0, 1] as ``viewer`` sees it (the one rule:
        :meth:`agora.economy.ReputationGraph.scores`)."""
        return self.reputation.scores(_checksum(viewer) if viewer else None)

    def rate(self, rater: str, ratee: str, verified: bool, amount: int = 1, market: MarketKind = "any", deal_id: str | None = None) -> None:
        """Record that a delivery ``rater`` bought from ``ratee`` was verified or failed, once per
        deal when ``deal_id`` names it. This is the operator's own write (priors, tests); an
        agent's goes through its registry face, which first checks the deal on the ledger
        (agents.registry_access)."""
        for who in (rater, ratee):
            if _normalized(who) is None:
                raise InvalidOffer(f"a rating needs agent addresses, got {who!r}")
        key = (_checksum(rater), _checksum(ratee), (deal_id or "").lower())
        if deal_id is not None and key in self._rated:
            raise RatingRefused(f"{rater} already rated {ratee} for deal {deal_id}")
        try:
            self.reputation.record(key[0], key[1], verified, amount, market)
        except EconomyError as exc:
            raise InvalidOffer(str(exc)) from None
        if deal_id is not None:
            self._rated.add(key)

    def has_rated(self, rater: str, ratee: str, deal_id: str) -> bool:
        """Whether ``rater`` already rated ``ratee`` for deal ``deal_id``."""
        return (_checksum(rater), _checksum(ratee), deal_id.lower()) in self._rated

    def trust(self, viewer: str, among: list[str]) -> dict[str, float]:
        """How much ``viewer`` can trust each of ``among``, relative to the most trusted of them
        (1.0; everyone 1.0 when nothing is known of any). Personalized PageRank restarting at
        the viewer and the pre-trusted agents; EigenTrust over everyone when neither has rated."""
        return relative(self.reputation_scores(viewer), [_checksum(a) for a in among])

    # look up
    def model(self, model_hash: str) -> ModelOffer:
        return _get(self._models, model_hash, "model")

    def dataset(self, dataset_hash: str) -> DatasetOffer:
        return _get(self._datasets, dataset_hash, "dataset")

    def compute(self, provider: str) -> ComputeOffer:
        return _get(self._compute, provider, "compute provider")

    def agents(self) -> dict[str, dict[str, str]]:
        return dict(self._agents)

    def register_cohort(self, cohort: str, members: list[str], delegations: list[str]) -> None:
        """A cohort agent lists the members it speaks for (agents/roles/cohort.py), in order,
        each with its signed consent; an exchange checks the signatures before it settles a
        cohort's order from a member's account."""
        if len(members) != len(delegations):
            raise InvalidOffer(f"cohort {cohort}: {len(members)} members but {len(delegations)} delegations")
        self._cohorts[_checksum(cohort)] = [(_checksum(m), d) for m, d in zip(members, delegations, strict=False)]

    def cohort_members(self, cohort: str) -> list[tuple[str, str]]:
        """(member, delegation signature) pairs, as the cohort registered them."""
        return list(self._cohorts.get(_checksum(cohort), []))

    def role_of(self, address: str) -> str | None:
        """The role ``address`` registered with, or None."""
        entry = self._agents.get(address)
        return None if entry is None else entry.get("role")

    def find_models(self, task: str = "embedding", name: str | None = None) -> list[ModelOffer]:
        """Models that do ``task`` (and carry ``name``), cheapest first."""
        found = [m for m in self._models.values() if m.task == task and name in (None, m.name)]
        return sorted(found, key=lambda m: (m.price_per_call, m.model_hash))

    def find_datasets(self, name: str | None = None) -> list[DatasetOffer]:
        found = [d for d in self._datasets.values() if name in (None, d.name)]
        return sorted(found, key=lambda d: (d.price_per_use, d.dataset_hash))

    def find_compute(self, gpus: float = 0.0, gpu_memory_mb: int = 0, cpus: float = 0.0) -> list[ComputeOffer]:
        """Providers with at least this much capacity, cheapest first."""
        found = [c for c in self._compute.values() if c.gpus >= gpus and c.gpu_memory_mb >= gpu_memory_mb and c.cpus >= cpus]
        return sorted(found, key=lambda c: (c.price_per_second, c.owner))


def _check(offer: Any, cls: type[RecordT]) -> RecordT:
    if not isinstance(offer, cls):
        raise InvalidOffer(f"expected a {cls.__name__}, got {type(offer).__name__}")
    return offer


def _first_owner(table: dict[str, OfferT], key: str, offer: Offer) -> str:
    """``key``, unless another owner listed it first (ListingTaken)."""
    listed = table.get(key)
    if listed is not None and listed.owner != offer.owner:
        raise ListingTaken(f"{key[:12]}… is listed by {listed.owner}; {offer.owner} may not list it again")
    return key


def _get(table: dict[str, OfferT], key: str, what: str) -> OfferT:
    try:
        return table[key]
    except KeyError:
        raise UnknownOffer(f"no {what} registered under {key!r}") from None
