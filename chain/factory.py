"""Which ledger a name means: ``memory``, ``embedded`` (py-evm in this process) or a JSON-RPC URL.

A factory rather than a ledger, because a Ray deployment builds its ledger inside the ledger
service's actor (the factory travels, the chain does not), while a local runtime calls it here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from agora.chain.errors import InvalidArgument
from agora.chain.ledger import Ledger
from agora.chain.memory import MemoryLedger

__all__ = ["check_ledger_spec", "ledger_factory"]


def check_ledger_spec(spec: str) -> str:
    """``spec`` if it names a ledger (``memory``, ``embedded`` or an ``http(s)://`` JSON-RPC
    URL); else InvalidArgument. Imports nothing: a scenario names its ledger long before a run
    builds it, and checking a name must not load a chain (web3 costs most of a second)."""
    if spec in ("memory", "embedded") or spec.startswith(("http://", "https://")):
        return spec
    raise InvalidArgument(f"a ledger is memory, embedded or a JSON-RPC URL (http:// or https://), not {spec!r}")


def ledger_factory(spec: str, *, arbiter: str | None = None, treasury: str | None = None) -> Callable[[], Ledger]:
    """A factory of the ledger ``spec`` names (see :func:`check_ledger_spec`), made with the
    roles the population fills (its arbiter; None: the operator)."""
    if check_ledger_spec(spec) == "memory":
        return functools.partial(MemoryLedger, arbiter=arbiter, treasury=treasury)
    from agora.chain.evm import EVMLedger  # only for a chain: its import costs most of a second

    if spec == "embedded":
        return functools.partial(EVMLedger.embedded, arbiter=arbiter, treasury=treasury)
    return functools.partial(EVMLedger.connect, spec, arbiter=arbiter, treasury=treasury)
