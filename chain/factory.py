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

__all__ = ["ledger_factory"]


def ledger_factory(spec: str, *, arbiter: str | None = None, treasury: str | None = None) -> Callable[[], Ledger]:
    """A factory of the ledger ``spec`` names (``memory``, ``embedded`` or an ``http(s)://``
    JSON-RPC URL), made with the roles the population fills (its arbiter; None: the operator)."""
    if spec == "memory":
        return functools.partial(MemoryLedger, arbiter=arbiter, treasury=treasury)
    from agora.chain.evm import EVMLedger  # only for a chain: its import costs most of a second

    if spec == "embedded":
        return functools.partial(EVMLedger.embedded, arbiter=arbiter, treasury=treasury)
    if spec.startswith(("http://", "https://")):
        return functools.partial(EVMLedger.connect, spec, arbiter=arbiter, treasury=treasury)
    raise InvalidArgument(f"a ledger is memory, embedded or a JSON-RPC URL (http:// or https://), not {spec!r}")
