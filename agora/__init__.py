"""Agora: a multi-agent economy for AI work.

One import package over six layers, each its own subpackage (imported on use, so a memory-ledger
simulation never pays for the EVM or the models):

- ``agora.chain``: ledgers (memory, embedded EVM, JSON-RPC) and the Vyper contracts; money's rules.
- ``agora.economy``: markets, contracts and deal lifecycles, pure Python.
- ``agora.tasks``: jobs, the content store, model runners, executors and data vaults.
- ``agora.agents``: agents, roles, runtimes (one process, or Ray) and the registry.
- ``agora.gateway``: the HTTP gateway.
- ``agora.simulations``: scenarios, runs, reports and the ``agora`` command line.
"""

__all__ = ["agents", "chain", "economy", "gateway", "simulations", "tasks"]
__version__ = "0.2.0"
