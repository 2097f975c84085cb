# Set-up, build, demo and tests. Everything the project needs is installed from here:
# libtorch comes from PyPI torch==2.11.0 in .venv (what tch 0.24 links against).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
TORCH_VERSION := 2.11.0
# torch is the libtorch; the rest is the Python side of the parity tests: the authors'
# resamplers and front ends (torchaudio's Resample and MelSpectrogram; librosa.load with
# res_type='kaiser_best', the default of the librosa 0.8.1 the authors pin, which no longer
# imports under numpy 2: 0.11 runs the same resampy code).
PY_DEPS := torch==$(TORCH_VERSION) torchaudio==$(TORCH_VERSION) numpy librosa==0.11.0 resampy==0.4.3
STAMP := $(VENV)/.deps-$(shell echo '$(PY_DEPS)' | sha256sum | cut -c1-12)
BIN := target/release/ascrepro
# Every recipe's demo profile is part of `make demo` and of `make check-reports`.
RECIPES := $(sort $(wildcard recipes/*.yaml))
RECIPE := recipes/cai2023_tfsepnet.yaml

.PHONY: setup build demo test fuzz bench bench-demo check-reports notebooks notebooks-serve clean

$(PY):
	python3 -m venv $(VENV)

$(STAMP): | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check $(PY_DEPS)
	touch $@

# .cargo/config.toml points LIBTORCH at this link; build.rs embeds its lib/ as the binary's rpath.
.libtorch: $(STAMP)
	ln -sfn "$$($(PY) -c 'import os, torch; print(os.path.dirname(torch.__file__))')" $@

setup: .libtorch

build: setup
	cargo build --release --locked

# Each recipe's demo report into reports/<id>/, all recipes at once (scripts/demos.sh); then
# the site index reports/index.html over them, and its check.
demo: build
	scripts/demos.sh $(BIN) .cache/ascrepro reports $(RECIPES)
	$(BIN) site reports
	$(BIN) verify reports

test: build
	cargo test --release --locked --workspace

# Long fuzz runs (`make test` runs a bounded number of inputs per reader): MINUTES per reader,
# READERS a comma-separated list or all (`ascrepro-fuzz list`), JOBS readers at once, SEED the
# mutation seed. Failing inputs are saved under fuzz/regressions/<reader>/: commit them.
READERS ?= all
MINUTES ?= 30
JOBS ?= 1
SEED ?= 0
fuzz: build
	target/release/ascrepro-fuzz --reader $(READERS) --minutes $(MINUTES) --jobs $(JOBS) --seed $(SEED)

# Benchmarks (not tests): each prints `BENCH <name> ours=<rate> peer=<rate> ratio=<ours/peer>`,
# its peer (libtorch, or PyTorch through the venv's Python) measured in the same run.
bench: build
	cargo bench --locked

# The local executor's speed-up (not part of `bench`: two cold demo runs, about 10 minutes):
# `--jobs 1` then `--jobs 2` back to back, both reports checked against the committed one.
bench-demo: build
	benches/demo_jobs.sh $(BIN) $(RECIPE)

# Regenerates every committed demo report from scratch and compares its checksums bit for bit,
# then checks the site index over them.
check-reports: build
	rm -rf .cache/check
	scripts/demos.sh $(BIN) .cache/check/cache .cache/check $(RECIPES)
	@for r in $(RECIPES); do \
		id=$$(basename $$r .yaml); \
		diff reports/$$id/SHA256SUMS .cache/check/$$id/SHA256SUMS || exit 1; \
		echo "reports/$$id regenerates bit for bit"; \
	done
	$(BIN) verify reports

# Rust notebooks (notebooks/*.ipynb) over the committed reports, through the results crate
# (crates/results, no libtorch). Installs what is missing: Jupyter from PyPI into .venv, the
# evcxr kernel with `cargo install --locked` into .tools/evcxr, its kernel spec inside .venv
# (scripts/notebooks.sh); then executes every notebook headless into target/notebooks/
# (.ipynb and .html), failing on any cell error.
NB_PY_DEPS := jupyter==1.1.1
NB_STAMP := $(VENV)/.nb-$(shell echo '$(NB_PY_DEPS)' | sha256sum | cut -c1-12)
EVCXR_VERSION := 0.22.0
EVCXR := .tools/evcxr/bin/evcxr_jupyter
KERNEL := $(VENV)/share/jupyter/kernels/rust/kernel.json
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))

$(NB_STAMP): | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check $(NB_PY_DEPS)
	touch $@

$(EVCXR):
	cargo install --locked --quiet evcxr_jupyter --version $(EVCXR_VERSION) --root .tools/evcxr

$(KERNEL): $(EVCXR) $(NB_STAMP) scripts/notebooks.sh
	scripts/notebooks.sh kernel $(EVCXR)

notebooks: $(KERNEL)
	scripts/notebooks.sh execute $(NOTEBOOKS)

# JupyterLab on the notebooks, with the same kernel (open the URL it prints).
notebooks-serve: $(KERNEL)
	JUPYTER_PREFER_ENV_PATH=1 $(VENV)/bin/jupyter lab --notebook-dir=notebooks --no-browser

clean:
	rm -rf target .cache
