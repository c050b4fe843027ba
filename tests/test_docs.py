"""The docs hold only code that runs: every fenced block in README.md and docs/ is checked here.

- ``python``: a snippet include (``--8<-- "examples/x.py"``) of a file a test runs, a verbatim
  excerpt of such a file (the README, which GitHub shows without includes), or run here, page by
  page, in one namespace per page as a reader would paste it.
- ``yaml``: included or inline, validated here as a scenario (or, without a clock, a population)
  through the loader the CLI uses; the annotated scenario is run here through the CLI itself.
- ``bash`` / ``console``: each ``agora ...`` command names a real subcommand (``--help`` exits 0)
  and only options that command has; each ``make X`` names a Makefile target; an included
  script must be one a test runs (the gateway walk-throughs run at the end of this file, slow).
- ``text``: output, shown and not run. Any other language, or none, fails.

``mkdocs build --strict`` (in ``make test``) checks the includes resolve and the links hold.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import socket
import subprocess
import sys
import textwrap
import time
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import import_module
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
ANNOTATED = ROOT / "docs" / "examples" / "annotated.yaml"
# files this module runs itself (the rest of examples/ are run by tests/test_examples.py)
RUN_HERE = {"docs/examples/annotated.yaml", "docs/examples/population.py", "examples/gateway_client.py", "examples/gateway_curl.sh"}
SHELL = {"bash", "sh", "shell", "console"}
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$")
SNIPPET = re.compile(r'^\s*--8<--\s+"(?P<path>[^"]+)"\s*$')


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    body: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def includes(self) -> list[str]:
        """The files the block includes (``path``, ``path:start:end`` or ``path:section``),
        or [] for an inline block; a block mixing includes and code counts as inline."""
        lines = [line for line in self.body.splitlines() if line.strip()]
        found = [SNIPPET.match(line) for line in lines]
        return [m["path"].split(":")[0] for m in found] if lines and all(found) else []


def blocks(page: Path) -> list[Block]:
    """Every fenced block of a markdown page, indented ones (in lists, admonitions) included."""
    out, lines, i = [], page.read_text().splitlines(), 0
    while i < len(lines):
        opened = FENCE.match(lines[i])
        if not opened:
            i += 1
            continue
        fence, indent, start = opened["fence"], len(opened["indent"]), i
        body = []
        i += 1
        while i < len(lines) and not re.match(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", lines[i]):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        lang = opened["info"].split()[0].lower() if opened["info"].strip() else ""
        out.append(Block(page, start + 1, lang, "\n".join(body)))
        i += 1
    return out


ALL = [b for page in PAGES for b in blocks(page)]


@cache
def examples_run_by_tests() -> set[str]:
    """The examples tests/test_examples.py runs, as repository paths."""
    source = (ROOT / "tests" / "test_examples.py").read_text()
    return {f"examples/{name}" for name in re.findall(r'"(\w+\.py)"', source) if (ROOT / "examples" / name).exists()}


def excerpt_of_tested_file(body: str) -> bool:
    want = textwrap.dedent(body).strip()
    return bool(want) and any(want in (ROOT / path).read_text() for path in examples_run_by_tests() | RUN_HERE if path.endswith(".py"))


def is_tested_include(path: str) -> bool:
    return path in examples_run_by_tests() or path in RUN_HERE or path.endswith((".yaml", ".yml"))  # every YAML is validated below


# -- every block is accounted for ---------------------------------------------------------------------
def test_every_block_is_run_or_included_from_a_tested_file() -> None:
    wrong = []
    for block in ALL:
        if block.lang in ("text", *SHELL, "yaml", "yml") and not block.includes:
            continue  # output; shell lines and YAML are checked by the tests below
        if block.lang in ("python", "py") and not block.includes:
            continue  # an excerpt of a tested file, or run by test_inline_python_runs
        if block.includes and block.lang in ("python", "py", "yaml", "yml", *SHELL):
            wrong += [f"{block.where}: includes {p}, which no test runs" for p in block.includes if not is_tested_include(p)]
            wrong += [f"{block.where}: includes {p}, which does not exist" for p in block.includes if not (ROOT / p).exists()]
            continue
        wrong.append(f"{block.where}: a block in {block.lang or 'no language'!r}: use python, yaml, bash, console or text")
    assert not wrong, "\n".join(wrong)


def test_the_readme_is_a_front_door() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme):
        if not target.startswith(("http://", "https://", "mailto:")):
            assert (ROOT / target).exists(), f"README links to {target}, which does not exist"


# -- python ---------------------------------------------------------------------------------------------
INLINE_PY = {}
for _b in ALL:
    if _b.lang in ("python", "py") and not _b.includes and not excerpt_of_tested_file(_b.body):
        INLINE_PY.setdefault(_b.page, []).append(_b)


@pytest.mark.parametrize("page", sorted(INLINE_PY), ids=lambda p: str(p.relative_to(ROOT)))
def test_inline_python_runs(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A page's own python blocks, in order, in one namespace (as a reader pastes them)."""
    assert page.name != "README.md", "README python blocks are excerpts of tested files (GitHub shows no includes)"
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("AGORA_HOME", str(tmp_path))
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for block in INLINE_PY[page]:
        exec(compile(textwrap.dedent(block.body), block.where, "exec"), namespace)  # noqa: S102 - the docs' own code


# -- yaml -----------------------------------------------------------------------------------------------
def _validate(data: object, where: str) -> None:
    from agora.agents import Population
    from agora.simulations.scenario import Scenario

    kind = Scenario if isinstance(data, dict) and "duration" in data else Population
    kind.parse(data, where)


def test_yaml_blocks_and_included_yaml_files_validate() -> None:
    from agora.agents import Population
    from agora.simulations.scenario import Scenario

    seen = 0
    for block in ALL:
        if block.lang not in ("yaml", "yml"):
            continue
        if block.includes:
            for path in block.includes:
                data = yaml.safe_load((ROOT / path).read_text())
                (Scenario if "duration" in data else Population).load(ROOT / path)
        else:
            _validate(yaml.safe_load(block.body), block.where)
        seen += 1
    assert seen


def test_the_annotated_scenario_names_every_field() -> None:
    """Complete means complete: every field of the scenario schema (and of its parts) is in
    the annotated file, so a field added to the schema must be documented there."""
    from agora.agents.roles.venues import VENUES
    from agora.simulations.scenario import MarketSpec, MetricsSpec, RuntimeSpec, Scenario, ScenarioGroup, Shock

    data = yaml.safe_load(ANNOTATED.read_text())
    groups, markets = data["agents"], list(data["markets"].values())
    parts = {
        Scenario: [data],
        RuntimeSpec: [data["runtime"]],
        MetricsSpec: [data["metrics"]],
        MarketSpec: markets,
        ScenarioGroup: groups,
        Shock: data["shocks"],
    }
    missing = [f"{cls.__name__}.{field}" for cls, found in parts.items() for field in cls.model_fields if not any(field in item for item in found)]
    missing += [f"keys.{field}" for field in ("source", "phrase_env") if field not in data["keys"]]
    mechanisms = {m["mechanism"] for m in markets}
    missing += [f"mechanism {m}" for m in sorted(VENUES) if m not in mechanisms]
    missing += [f"shock {k}" for k in Shock.model_fields["kind"].annotation.__args__ if k not in {s["kind"] for s in data["shocks"]}]
    assert not missing, f"{ANNOTATED.name} leaves out {missing}"


def test_the_annotated_scenario_runs_through_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(cli_app(), ["simulate", str(ANNOTATED.relative_to(ROOT)), "--out", str(tmp_path), "--no-report"])
    assert result.exit_code == 0, result.output
    assert "annotated/baseline" in result.output and "annotated/half-sellers-call" in result.output


# -- shell ----------------------------------------------------------------------------------------------
@cache
def cli_app():  # noqa: ANN201 - the typer app the `agora` script runs
    target = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["agora"]
    module, _, attr = target.partition(":")
    return getattr(import_module(module), attr)


def shell_lines(block: Block) -> list[str]:
    """A shell block's commands: continuations joined, comments dropped, a console block's
    ``$ `` lines only."""
    text = block.body if not block.includes else "\n".join((ROOT / p).read_text() for p in block.includes)
    text = re.sub(r"\\\n\s*", " ", text)
    lines = text.splitlines()
    if block.lang == "console":
        lines = [line[2:] for line in lines if line.startswith("$ ")]
    return [re.sub(r"(^|\s)#.*$", "", line) for line in lines]


AGORA = re.compile(r"(?:^|[;&|({]|\$\()\s*agora\s+(?P<rest>[^;&)]*?)(?=[;&)]|\s\|\s|$)")
MAKE = re.compile(r"(?:^|[;&|({])\s*make\s+(?P<target>[A-Za-z][\w-]*)")
INLINE_AGORA = re.compile(r"`(agora\s+[a-z][^`]*)`")


def agora_commands() -> list[tuple[str, str]]:
    found = [(b.where, m["rest"].strip()) for b in ALL if b.lang in SHELL for line in shell_lines(b) for m in AGORA.finditer(line)]
    found += [(str(page.relative_to(ROOT)), m[1][len("agora") :].strip()) for page in PAGES for m in INLINE_AGORA.finditer(page.read_text())]
    return found


def resolve(rest: str) -> tuple[list[str], object]:
    """The subcommand path a command line names, and its click command."""
    import typer

    command = typer.main.get_command(cli_app())
    words = shlex.split(rest.replace("[", " ").replace("]", " "), comments=True) if rest.count('"') % 2 == 0 else rest.split()
    path = []
    for word in words:
        commands = getattr(command, "commands", None)
        if not commands or word.startswith("-"):
            break
        for each in word.split("|"):  # a synopsis: `agora sign request|voucher|tx`
            assert each in commands, f"agora {' '.join(path)} has no subcommand {each!r} (it has {sorted(commands)})"
        word = word.split("|")[0]
        path.append(word)
        command = commands[word]
    return path, command


def test_every_agora_command_in_the_docs_parses() -> None:
    from typer.testing import CliRunner

    checked, wrong = {}, []
    for where, rest in agora_commands():
        try:
            path, command = resolve(rest)
        except AssertionError as exc:
            wrong.append(f"{where}: {exc}")
            continue
        if not path:
            wrong.append(f"{where}: `agora {rest}` names no subcommand")
            continue
        if tuple(path) not in checked:
            checked[tuple(path)] = CliRunner().invoke(cli_app(), [*path, "--help"]).exit_code
        if checked[tuple(path)] != 0:
            wrong.append(f"{where}: `agora {' '.join(path)} --help` exits {checked[tuple(path)]}")
        known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)} | {"--help"}
        wrong += [f"{where}: `agora {' '.join(path)}` has no option {opt}" for opt in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", rest) if opt not in known]
    assert checked and not wrong, "\n".join(wrong)


def test_every_make_target_in_the_docs_exists() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = {t for line in re.findall(r"^([\w.$() -]+):(?!=)", makefile, re.M) for t in line.split()}
    named = [(b.where, m["target"]) for b in ALL if b.lang in SHELL for line in shell_lines(b) for m in MAKE.finditer(line)]
    named += [(str(p.relative_to(ROOT)), t) for p in PAGES for t in re.findall(r"`make ([A-Za-z][\w-]*)`", p.read_text())]
    assert named and not [f"{where}: make {t}" for where, t in named if t not in targets]


# -- the slow ones: code that needs a model or a gateway --------------------------------------------------
def _agora_env(tmp_path: Path) -> dict[str, str]:
    """An environment whose `agora` is this checkout's (the script pyproject declares, run by
    this interpreter with the checkout first on the path)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    target = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["agora"]
    module, _, attr = target.partition(":")
    (bin_dir / "agora").write_text(f"#!{sys.executable}\nimport sys\nfrom {module} import {attr} as app\nsys.exit(app())\n")
    (bin_dir / "agora").chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(ROOT), "AGORA_HOME": str(tmp_path / "home")}


@pytest.mark.slow
def test_the_population_tutorial_settles_its_deal(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "docs/examples/population.py"], cwd=ROOT, env=_agora_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "deal settled" in out.stdout and "(64, 384)" in out.stdout and "money conserved: True" in out.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.chain
def test_the_http_tutorial_pays_calls_with_curl_and_with_python(tmp_path: Path) -> None:
    """The gateway walk-throughs against a real `agora gateway`: the curl script, then the
    Python client (channel, then escrow)."""
    env = _agora_env(tmp_path)
    port = _free_port()
    env["GW"] = gw = f"http://127.0.0.1:{port}"
    log = (tmp_path / "gateway.log").open("w")
    gateway = subprocess.Popen(["agora", "gateway", "--port", str(port), "--faucet", str(10**18)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        import httpx

        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert gateway.poll() is None, (tmp_path / "gateway.log").read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{gw}/v1/chain", timeout=2).status_code == 200:
                    break
            time.sleep(0.5)
        curl = subprocess.run(["bash", "examples/gateway_curl.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert curl.returncode == 0, curl.stdout[-2000:] + curl.stderr[-2000:]
        assert '"shape":[1,384]' in curl.stdout and '"nonce":1' in curl.stdout and "claim_tx" in curl.stdout
        client = subprocess.run([sys.executable, "examples/gateway_client.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert client.returncode == 0, client.stderr[-2000:]
        assert "channel call: (1, 384) claim 0x" in client.stdout and "escrow call: (1, 384) released" in client.stdout
    finally:
        gateway.terminate()
        gateway.wait(timeout=60)
        log.close()
