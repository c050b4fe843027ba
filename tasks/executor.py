"""Executors: where a provider's jobs run.

:func:`run_job` is the unit of work, a plain function: verify and load the model from the
content store, read the inputs, embed, meter. :class:`LocalExecutor` calls it in-process (tests,
simulations); :class:`RayExecutor` runs it as a Ray task that asks for the job's GPUs and CPUs,
so Ray's scheduler places it on a node with free capacity. Agents see only ``Executor.run``
and never import Ray.

An agent's ``ctx.executor`` is an :class:`ExecutorFace` its host binds to it: every job runs as
that agent (a different requester is refused), it opens and reads only its own vault, and a job
on a vault carries the agent's signature over the job, the vault and the deal that pays for it,
which a Ray vault checks (any client of the cluster can call it). The executor hands vaults the
ledger they check payment on (tasks.vault).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from agora.chain.crypto import recover_digest
from agora.tasks.errors import JobFailed, TasksError
from agora.tasks.jobs import JobResult, JobSpec
from agora.tasks.run import read_dataset, run_job
from agora.tasks.vault import DataVault, request_digest

__all__ = ["Executor", "ExecutorFace", "LocalExecutor", "RequesterMismatch", "read_dataset", "run_job", "signed_by", "vault_name", "vault_owner"]


class Executor(ABC):
    """Runs jobs for a compute provider, and hosts data owners' vaults (tasks.vault): a job
    whose spec names a vault runs there, where its dataset lives."""

    store_root: str
    ledger: Any = None  # what vaults check payment on: the runtime's ledger reader (or a Ray ledger actor)

    @abstractmethod
    def run(self, spec: JobSpec, timeout_s: float | None = None, requester: str = "", deal_id: str | None = None, proof: str = "") -> JobResult:
        """Run ``spec`` and return its result, or raise JobFailed / another TasksError. A job on
        a vault runs for ``requester`` under ``deal_id`` (``proof``: the requester's signature
        over the request, which a Ray vault checks)."""

    def use_ledger(self, ledger: Any) -> None:
        """Have the vaults this executor opens check payment on ``ledger`` (a runtime's)."""
        self.ledger = ledger

    def face(self, agent: Any, ledger: Any = None) -> ExecutorFace:
        """``agent``'s own executor: jobs only in its name, only its own vault."""
        return ExecutorFace(self, agent.address, agent.identity.sign_digest)

    @abstractmethod
    def open_vault(self, owner: str) -> tuple[str, Any]:
        """Create (or find) ``owner``'s vault on this node; returns its name and a client."""

    @abstractmethod
    def vault(self, name: str) -> Any:
        """A client of the vault called ``name`` (its methods as DataVault's)."""

    def vault_root(self, owner: str) -> Path:
        """Where a vault keeps its rows: beside the shared store, never inside it."""
        return Path(self.store_root).parent / "vaults" / owner.lower()


def vault_name(owner: str) -> str:
    return f"agora-vault-{owner.lower()}"


def vault_owner(name: str) -> str:
    """The owner a vault's name names ("" for a name not made by :func:`vault_name`)."""
    prefix = "agora-vault-"
    return name[len(prefix) :] if name.startswith(prefix) else ""


class LocalExecutor(Executor):
    """In-process execution; models stay warm in the process-wide cache; vaults are objects."""

    def __init__(self, store_root: Path | str, ledger: Any = None) -> None:
        self.store_root = str(store_root)
        self.ledger = ledger
        self._vaults: dict[str, Any] = {}

    def run(self, spec: JobSpec, timeout_s: float | None = None, requester: str = "", deal_id: str | None = None, proof: str = "") -> JobResult:
        try:
            if spec.vault is not None:  # in process: the requester is what the agent's face set
                return self.vault(spec.vault).run(spec, requester, deal_id=deal_id)
            return run_job(spec, self.store_root)
        except TasksError:
            raise
        except Exception as exc:  # noqa: BLE001 - any model/runtime error is a job failure
            raise JobFailed(f"job {spec.job_id} failed: {exc!r}") from exc

    def open_vault(self, owner: str) -> tuple[str, Any]:
        name = vault_name(owner)
        if name not in self._vaults:
            self._vaults[name] = DataVault(owner, self.vault_root(owner), self.store_root, ledger=self.ledger)
        return name, self._vaults[name]

    def vault(self, name: str) -> Any:
        from agora.tasks.errors import UnknownArtifact

        found = self._vaults.get(name)
        if found is None:
            raise UnknownArtifact(f"no vault {name!r} in this process")
        return found


def signed_by(address: str, digest: bytes, signature: str) -> bool:
    """Whether ``signature`` over ``digest`` is ``address``'s (never raises)."""
    try:
        return isinstance(address, str) and recover_digest(digest, signature) == address.lower()
    except Exception:  # noqa: BLE001 - a malformed signature is a forged one
        return False


class RequesterMismatch(TasksError, PermissionError):
    """A job an agent asked to run in another agent's name, or a vault not its own."""


class ExecutorFace:
    """An agent's ``ctx.executor`` (its host binds it): runs jobs as the agent and nobody else,
    signs each vault job with the agent's key, and reaches only the agent's own vault."""

    def __init__(self, executor: Executor, address: str, sign: Any) -> None:
        self._executor, self._address, self._sign = executor, address, sign
        self.store_root = executor.store_root

    def run(self, spec: JobSpec, timeout_s: float | None = None, requester: str = "", deal_id: str | None = None) -> JobResult:
        """Run ``spec`` as this agent; a job on a vault under ``deal_id`` (the escrow that pays
        for it; found on the ledger by the vault when not named)."""
        if requester and requester.lower() != self._address.lower():
            raise RequesterMismatch(f"{self._address} may not run a job as {requester}")
        proof = self._sign(request_digest(spec.vault, spec, deal_id, self._address)) if spec.vault is not None else ""
        return self._executor.run(spec, timeout_s, requester=self._address, deal_id=deal_id, proof=proof)

    def open_vault(self, owner: str) -> tuple[str, Any]:
        if owner.lower() != self._address.lower():
            raise RequesterMismatch(f"{self._address} may not open {owner}'s vault")
        return self._executor.open_vault(owner)

    def vault(self, name: str) -> Any:
        if name != vault_name(self._address):
            raise RequesterMismatch(f"{self._address} may reach only its own vault, not {name!r}")
        return self._executor.vault(name)

    def vault_root(self, owner: str) -> Path:
        return self._executor.vault_root(owner)
