"""One import package: what Agora installs is ``agora`` and nothing else at top level.

The six layer folders stay at the repository's top level (``agora/`` links to them), and every
import inside the project names them through ``agora``: a module imported both as ``chain.types``
and as ``agora.chain.types`` would be two modules with two sets of classes, and installing an
unrelated ``agents`` distribution (the OpenAI Agents SDK's import name) used to overwrite ours.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("agents", "chain", "economy", "gateway", "simulations", "tasks")
CODE = [*LAYERS, "tests", "bench", "examples"]


def test_outside_the_repository_only_agora_is_importable_and_all_of_it_imports_and_its_data(tmp_path: Path) -> None:
    script = f"""
import importlib, importlib.util, json, pkgutil, sys
import agora
failed = {{}}
for info in pkgutil.walk_packages(agora.__path__, "agora."):
    try:
        importlib.import_module(info.name)
    except Exception as exc:
        failed[info.name] = repr(exc)
top = sorted({{name.split(".")[0] for name in sys.modules}})
from agora.chain.compiler import CONTRACTS_DIR
from agora.gateway.app import explorer_html
from agora.simulations.scenario import builtin_names
shipped = {{"explorer": "<html" in explorer_html().lower(), "scenarios": len(builtin_names()), "contracts": len(list(CONTRACTS_DIR.glob("*.vy")))}}
print(json.dumps({{
    "shipped": shipped,
    "failed": failed,
    "modules": sum(1 for name in sys.modules if name.startswith("agora.")),
    "importable": {{n: importlib.util.find_spec(n) is not None for n in {list(LAYERS)!r}}},
    "loaded": [n for n in top if n in {list(LAYERS)!r}],
}}))
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["failed"] == {}
    assert found["modules"] > 80
    assert found["importable"] == {name: False for name in LAYERS}
    assert found["loaded"] == []
    # what the package ships beside its code, read through it (the explorer once asked for a
    # top-level `gateway`, found only from inside the checkout)
    assert found["shipped"]["explorer"] and found["shipped"]["scenarios"] >= 3 and found["shipped"]["contracts"] == 5


def _top_level_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return [n for n in names if n.split(".")[0] in LAYERS]


def test_no_code_imports_a_layer_by_its_bare_name() -> None:
    found = {}
    for folder in CODE:
        for path in sorted((ROOT / folder).rglob("*.py")):
            bare = _top_level_imports(path)
            if bare:
                found[str(path.relative_to(ROOT))] = bare
    assert found == {}, json.dumps(found, indent=1)
