"""The registry on Ray: an actor every shard writes to, and the shard-side face that batches.

A shard hosts its agents' keys, and a guest's shard (agora.agents.ray.deployment.Guest) runs code the
deployment does not control, so the registry actor never takes a shard's word for who writes:
each write is pickled, numbered and signed with its agent's key in the shard
(:class:`BatchedRegistry` queues them and sends a batch per flush), and :class:`RegistryService`
checks, for every write, the signature, that its number is above the writer's last (a write is
not replayed), and the same rules as in one process (agents.registry_access): in the writer's
own name, a role from the operator's roster (a writer off the roster may not take a trusted
role), ratings backed by a settled deal it reads on the ledger actor. The operator's own writes
(priors, the roster, the deployment's manifest) are signed by the runtime's operator key, whose
address the actor was given when it was made; the actor's write methods refuse a direct call.
The numbers come from the wall clock in nanoseconds, kept increasing per writer, so a shard
restarted from its journal goes on above them.
"""

from __future__ import annotations

import inspect
import pickle
import threading
import time
from collections.abc import Callable
from typing import Any

from agora.agents.identity import Identity, keccak256, recover_digest
from agora.agents.registry import NotYourName, RatingRefused, Registry
from agora.agents.registry_access import WRITES, RegistryFace, check_name, deal_index, settled_deal

OPERATOR_WRITES = ("expire", "set_deployment", "assign_roles")

SignedWrite = tuple[str, bytes, str]  # (writer, pickled (name, args, kwargs, number), writer's signature)


class WriteSigner:
    """Numbers and signs registry writes with the keys of the agents a shard hosts."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        self._lock = threading.Lock()

    def sign(self, identity: Identity, name: str, args: tuple, kwargs: dict[str, Any]) -> SignedWrite:
        with self._lock:
            number = max(time.time_ns(), self._last.get(identity.address, 0) + 1)
            self._last[identity.address] = number
        blob = pickle.dumps((name, args, kwargs, number), protocol=pickle.HIGHEST_PROTOCOL)
        return identity.address, blob, identity.sign_digest(keccak256(blob))


class RegistryService(Registry):
    """The registry as an actor: ``apply`` runs a batch of signed writes in order and returns
    the errors, so a shard reaches it once per flush; ``write`` runs one and returns its result
    (the operator's). ``dump`` and ``state`` carry it across a deployment's stop and resume."""

    def __init__(self, state: bytes | None = None, ledger: Any = None, operator: str = "") -> None:
        super().__init__()
        self._deployment: dict[str, Any] = {}
        self._roster: dict[str, str] = {}  # address (lower) -> the role the operator gave it
        self._numbers: dict[str, int] = {}  # writer (lower) -> the number of its last write taken
        if state is not None:
            self.__dict__.update(pickle.loads(state))
        self._operator = operator.lower()
        self._ledger_handle = ledger
        self._reader: Any = None

    def dump(self) -> bytes:
        skip = ("_deployment", "_operator", "_ledger_handle", "_reader")
        return pickle.dumps({k: v for k, v in self.__dict__.items() if k not in skip}, protocol=pickle.HIGHEST_PROTOCOL)

    def deployment(self) -> dict[str, Any]:
        return dict(self._deployment)

    def apply(self, ops: list[SignedWrite]) -> list[str]:
        errors = []
        for op in ops:
            try:
                self.write(*op)
            except Exception as exc:  # noqa: BLE001 - reported back to the shard, which logs it
                errors.append(f"registry write by {op[0]}: {type(exc).__name__}: {exc}")
        return errors

    def write(self, writer: Any, blob: Any, signature: Any) -> Any:
        """Check and make one signed write; returns what the registry method returns."""
        try:
            genuine = isinstance(writer, str) and recover_digest(keccak256(blob), signature) == writer.lower()
            name, args, kwargs, number = pickle.loads(blob) if genuine else (None, (), {}, 0)
        except Exception:  # noqa: BLE001 - a malformed write is a forged one
            genuine = False
        if not genuine:
            raise NotYourName(f"a registry write not signed by {writer!r}, the writer it names")
        who = writer.lower()
        if not isinstance(number, int) or number <= self._numbers.get(who, 0):
            raise NotYourName(f"a registry write by {writer} numbered {number!r}, not above its last: replayed")
        self._numbers[who] = number
        if who == self._operator and self._operator:
            return self._operator_write(name, args, kwargs)
        check_name(writer, name, args, kwargs, self._roster.get(who), trusted_roles=False)
        if name == "rate":
            bound = inspect.signature(RegistryFace.rate).bind(self, *args, **kwargs)
            bound.apply_defaults()
            a = bound.arguments
            a["contract"] = _contract(a["contract"])
            deal = settled_deal(
                self, self._ledger(), deal_index(self), a["rater"], a["ratee"], a["amount"], a["deal_id"], a["verified"], a["contract"], a["signature"]
            )
            return Registry.rate(self, a["rater"], a["ratee"], a["verified"], a["amount"], a["market"], deal_id=deal)
        return getattr(Registry, name)(self, *args, **kwargs)

    def _operator_write(self, name: str, args: tuple, kwargs: dict[str, Any]) -> Any:
        if name == "assign_roles":
            self._roster.update({a.lower(): r for a, r in args[0].items()})
            return None
        if name == "set_deployment":
            self._deployment = dict(args[0])
            return None
        if name not in WRITES and name not in OPERATOR_WRITES:
            raise NotYourName(f"{name} is not a registry write")
        return getattr(Registry, name)(self, *args, **kwargs)

    def _ledger(self) -> Any:
        if self._reader is None:
            if self._ledger_handle is None:
                raise NotYourName("this registry has no ledger to check ratings on")
            from agora.agents.ray.ledger import RemoteLedger

            self._reader = RemoteLedger(self._ledger_handle)
        return self._reader


def _contract(sent: Any) -> Any:
    """A rating's contract as sent by a shard (its fields as JSON data), rebuilt and validated
    here: an object unpickled from a writer is never used as one (its methods could be anything)."""
    if sent is None:
        return None
    from agora.economy.contract import Contract
    from agora.economy.errors import EconomyError

    if not isinstance(sent, dict):
        raise RatingRefused(f"a rating's contract travels as its fields, not a {type(sent).__name__}")
    try:
        return Contract.model_validate(sent)
    except (EconomyError, ValueError) as exc:
        raise RatingRefused(f"the rating's contract does not validate: {exc}") from None


def _refuse_direct(name: str) -> Callable[..., Any]:
    def refuse(self: RegistryService, *args: Any, **kwargs: Any) -> Any:
        raise NotYourName(f"registry.{name} takes only signed writes (apply / write)")

    refuse.__name__ = name
    return refuse


for _name in (*WRITES, *OPERATOR_WRITES):  # any client of the cluster can call an actor's methods
    setattr(RegistryService, _name, _refuse_direct(_name))


class BatchedRegistry:
    """The registry as a shard's agents see it: each agent gets a face (``face``) whose writes
    are signed with its key and queued, and go in one call when the shard flushes; a read first
    flushes, so an agent always reads its own writes."""

    def __init__(self, handle: Any) -> None:
        from agora.tasks.ray_executor import ActorClient

        self._handle = handle
        self._proxy = ActorClient(handle)
        self._signer = WriteSigner()
        self._ops: list[SignedWrite] = []
        self._lock = threading.Lock()
        self.errors: list[str] = []

    def face(self, agent: Any, ledger: Any) -> RegistryFace:
        identity = agent.identity
        return RegistryFace(
            self, agent.address, type(agent).role, ledger, sink=lambda name, args, kwargs: self._queue(self._signer.sign(identity, name, args, kwargs))
        )

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_") or name in WRITES or name in OPERATOR_WRITES:
            raise AttributeError(name)
        read = getattr(self._proxy, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.flush()
            return read(*args, **kwargs)

        return call

    def _queue(self, op: SignedWrite) -> None:
        with self._lock:
            self._ops.append(op)

    def flush(self) -> None:
        import ray

        with self._lock:
            ops, self._ops = self._ops, []
        if ops:
            self.errors += ray.get(self._handle.apply.remote(ops))


class OperatorRegistry:
    """The runtime's own registry client (``RayRuntime.registry``): reads as they are, writes
    signed by the operator key, each made at once with its result or error."""

    def __init__(self, handle: Any, operator: Identity) -> None:
        from agora.tasks.ray_executor import ActorClient

        self._handle, self._proxy, self._operator, self._signer = handle, ActorClient(handle), operator, WriteSigner()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in WRITES or name in OPERATOR_WRITES:
            return lambda *args, **kwargs: self._proxy.write(*self._signer.sign(self._operator, name, args, kwargs))
        return getattr(self._proxy, name)
