"""The layers, read from the imports: a test, so a shortcut across them fails here first.

``chain`` < ``economy`` < ``tasks`` < ``agents`` < ``gateway`` < ``simulations``: a package imports
only those before it (lazy imports inside functions count: they run too). ``chain`` is the base
every other layer builds on and imports no other Agora package and not Ray. Ray is imported only
in ``agents/ray/``, ``tasks/ray_executor.py`` and the command line; only the command line calls
``ray.init``. No import loop between modules anywhere (imports under ``TYPE_CHECKING`` never run
and are left out)."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

import agora

ORDER = ["chain", "economy", "tasks", "agents", "gateway", "simulations"]
RAY_ALLOWED = ("agora.agents.ray", "agora.tasks.ray_executor", "agora.simulations.cli")
ENTRY_POINTS = ("agora.simulations.cli",)


def sources() -> dict[str, str]:
    """Every module of the installed ``agora`` package: dotted name -> source."""
    root = Path(agora.__file__).parent
    found = {}
    for layer in ORDER:
        for path in sorted((root / layer).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(("agora", *parts[:-1])) if parts[-1] == "__init__" else ".".join(("agora", *parts))
            found[name] = path.read_text()
    return found


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(source: str) -> list[tuple[str, bool]]:
    """(module, is_call) pairs: every import a module runs, and ``ray.init`` calls (is_call)."""
    tree = ast.parse(source)
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _type_checking(node) for n in ast.walk(node)}
    found: list[tuple[str, bool]] = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, False) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, False))
            found += [(f"{node.module}.{alias.name}", False) for alias in node.names]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "init":
            if isinstance(node.func.value, ast.Name) and node.func.value.id == "ray":
                found.append(("ray.init", True))
    return found


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "agora" and len(parts) > 1 and parts[1] in ORDER else None


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def violations(modules: dict[str, str]) -> list[str]:
    """Every broken rule, one line each (empty: the layers hold)."""
    found: list[str] = []
    graph = nx.DiGraph()
    for name, source in modules.items():
        own = _layer(name)
        graph.add_node(name)
        for target, is_call in imports(source):
            if is_call:
                if not _under(name, ENTRY_POINTS):
                    found.append(f"{name} calls ray.init(): only an entry point starts or joins Ray")
                continue
            if target.split(".")[0] == "ray" and not _under(name, RAY_ALLOWED):
                found.append(f"{name} imports Ray ({target}): only agents/ray/, tasks/ray_executor.py and the CLI may")
            other = _layer(target)
            if other is None or own is None:
                continue
            if ORDER.index(other) > ORDER.index(own):
                found.append(f"{name} imports {target}: {own} may not import {other} (layers: {' < '.join(ORDER)})")
            if target in modules and target != name:
                graph.add_edge(name, target)
    for cycle in nx.simple_cycles(graph):
        if len(cycle) > 1 and not all(name == f"{other}.__init__" for name, other in zip(cycle, cycle[1:], strict=False)):
            found.append("import loop: " + " -> ".join([*cycle, cycle[0]]))
    return sorted(set(found))


def test_the_layers_hold() -> None:
    assert violations(sources()) == []


def test_a_shortcut_across_the_layers_is_caught() -> None:
    """The check itself: each kind of shortcut added to the real tree is reported."""
    real = sources()
    cases = {
        "agora.chain.memory": "import agora.simulations\n",
        "agora.chain.types": "import ray\n",
        "agora.economy.auction": "from agora.agents import Agent\n",
        "agora.agents.runtime": "def f():\n    import ray\n    ray.init()\n",
        "agora.gateway.app": "def f():\n    from agora.simulations.runner import simulate\n",
    }
    for module, shortcut in cases.items():
        assert module in real, module
        broken = violations({**real, module: real[module] + "\n" + shortcut})
        assert any(line.startswith(module) for line in broken), (module, broken)
    loop = violations({**real, "agora.chain.types": real["agora.chain.types"] + "\nfrom agora.chain import ledger\n"})
    assert any(line.startswith("import loop") for line in loop)


def test_no_module_is_over_500_lines() -> None:
    """Rooms small enough to read whole: a module that outgrows this splits by concern."""
    root = Path(agora.__file__).parent
    sizes = {str(p.relative_to(root)): len(p.read_text().splitlines()) for layer in ORDER for p in (root / layer).rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 500} == {}
