# NeuroStrat: `make demo` and `make test` work on a fresh machine with Python 3.11.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEV_STAMP := $(VENV)/.dev-installed-stamp
DEMO_DIR ?= demo
DEMO_FULL_DIR ?= $(DEMO_DIR)/full
DEMO_SUBJECTS ?= 24
DEMO_SITES ?= 2
DEMO_VOXEL_SIZE ?= 3.0
DEMO_DL_EPOCHS ?= 3
DEMO_SKULL_STRIP ?= template
DEMO_EFFECT_SIZE ?= 0.3
DEMO_OPTIONS ?=
NPROCS ?= 2
, := ,

.PHONY: install test demo demo-full bench lint docs clean container container-models container-test

install: $(STAMP)

# Order matters: torch (the local CPU build) before anything that depends on it; pyradiomics
# 3.0.1 built against the pinned numpy without build isolation (see requirements-build.txt).
$(STAMP): requirements.lock requirements-nodeps.txt requirements-build.txt requirements-test.txt \
	  pyproject.toml version
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements-build.txt
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet --no-build-isolation pyradiomics==3.0.1
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -r requirements-nodeps.txt
	$(BIN)/pip install --quiet -r requirements-test.txt -c requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -n $(NPROCS) --dist loadfile --durations=15 -m "not long and not slurm"

# The longest runs (the demo, the end-to-end cohort, planted-effect cohorts, network training,
# determinism, FreeSurfer and MeshNet accuracy: several minutes each); .ci/run runs them after
# `make test`.
.PHONY: test-long
test-long: $(STAMP)
	$(BIN)/python -m pytest -n $(NPROCS) --dist loadfile --durations=15 -m long

# The submission to a real SLURM (tests/test_slurm.py, marked slurm): start a one-node cluster
# first with `bash .ci/slurm-local.sh start` (and stop it with `... stop`), as .ci/run does.
.PHONY: test-slurm
test-slurm: $(STAMP)
	$(BIN)/python -m pytest -m slurm --durations=5 tests/test_slurm.py

# The development lane: the tests not marked slow (the long ones stay in `make test`).
.PHONY: test-fast
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n $(NPROCS) --dist loadfile -m "not slow and not slurm"

bench: $(STAMP)
	$(BIN)/pip install --quiet --no-deps -r requirements-bench.txt
	$(BIN)/python benchmarks/bench_foundation.py
	$(BIN)/python benchmarks/bench_preprocessing.py
	$(BIN)/python benchmarks/validate_brainstem.py
	$(BIN)/python benchmarks/validate_brainstem_meshnet.py
	$(BIN)/python benchmarks/bench_features.py
	$(BIN)/python benchmarks/bench_group.py
	$(BIN)/python benchmarks/bench_dnn.py
	$(BIN)/python benchmarks/bench_deep.py
	$(BIN)/python benchmarks/bench_brain_extraction.py
	$(BIN)/python benchmarks/bench_parcellation.py
	$(BIN)/python benchmarks/bench_demo.py
	$(BIN)/python benchmarks/bench_vs_ants.py
	$(BIN)/python benchmarks/readme_table.py --write

lint: $(DEV_STAMP)
	$(BIN)/ruff check bids_app tests benchmarks docs container run.py
	$(BIN)/ruff format --check bids_app tests benchmarks docs container run.py
	$(BIN)/lint-imports

# Sphinx, numpydoc, MyST, sphinx-argparse and import-linter, without changing any product pin.
$(DEV_STAMP): $(STAMP) requirements-docs.txt
	$(BIN)/pip install --quiet -r requirements-docs.txt -c requirements.lock
	touch $(DEV_STAMP)

# The documentation site, offline; -W: a warning fails the build.
docs: $(DEV_STAMP)
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html
	@echo "Documentation: $$(pwd)/docs/_build/html/index.html"

# The demonstration (bids_app/cli/demo.py): builds the synthetic cohort when $(DEMO_DIR)/bids is
# missing, runs the participant then the group level with one progress bar and an ETA, and prints
# where the reports are. `make demo`: 24 subjects (their first sessions), 2 sites, 3 mm, 30 %
# planted atrophy, brain extraction by template registration, 3 CNN epochs, three classifiers
# (9 min 38 s measured on 2 idle cores); `make demo-full` (the former demo): 40 subjects, all 50 sessions,
# 3 sites, 2 mm, 15 % atrophy, HD-BET where installed, 6 CNN epochs, the nine classifiers
# (about 27 minutes), into
# demo/full/.
demo: $(STAMP)
	$(BIN)/python -m bids_app.cli.demo $(DEMO_DIR) --subjects $(DEMO_SUBJECTS) --sites $(DEMO_SITES) \
	  --voxel-size $(DEMO_VOXEL_SIZE) --dl-epochs $(DEMO_DL_EPOCHS) --skull-strip $(DEMO_SKULL_STRIP) \
	  --effect-size $(DEMO_EFFECT_SIZE) --nprocs $(NPROCS) $(DEMO_OPTIONS)

demo-full: $(STAMP)
	$(MAKE) demo DEMO_DIR=$(DEMO_FULL_DIR) DEMO_SUBJECTS=40 DEMO_SITES=3 DEMO_VOXEL_SIZE=2.0 \
	  DEMO_DL_EPOCHS=6 DEMO_SKULL_STRIP=auto DEMO_EFFECT_SIZE=0.15 DEMO_OPTIONS="--all-sessions --smote-k 5 --classifiers all"

# The container image (Dockerfile), with podman where installed, else docker. Build options:
# CA_BUNDLE (an HTTPS proxy's CA, given as a build secret), TORCH_PIP_ARGS (where pip finds torch
# 2.13.0), CONTAINER_BUILD_ARGS (anything else, e.g. --network host).
ENGINE ?= $(shell command -v podman || command -v docker)
IMAGE ?= neurostrat/neurostrat:$(shell cat version)
CA_BUNDLE ?=
TORCH_PIP_ARGS ?=
CONTAINER_BUILD_ARGS ?=
MODELS_SRC ?=

container:
	$(ENGINE) build --build-arg VERSION=$$(cat version) \
	  $(if $(CA_BUNDLE),--secret id=ca$(,)src=$(CA_BUNDLE)) \
	  $(if $(TORCH_PIP_ARGS),--build-arg TORCH_PIP_ARGS="$(TORCH_PIP_ARGS)") \
	  $(CONTAINER_BUILD_ARGS) -t $(IMAGE) .
	@$(ENGINE) image inspect $(IMAGE) --format 'image $(IMAGE): {{.Size}} bytes'

# brainchop's MeshNet weights into container/models/ (baked into the image), checked by SHA-256.
container-models: $(STAMP)
	@test -n "$(MODELS_SRC)" || { echo "error: set MODELS_SRC=/path/to/brainchop/public/models"; exit 1; }
	for name in mindgrab model30chan18cls model30chan50cls; do \
	  mkdir -p container/models/$$name && cp $(MODELS_SRC)/$$name/{model.json,model.bin,colormap.json} container/models/$$name/; \
	done
	cp $(MODELS_SRC)/LICENSE container/models/LICENSE
	$(BIN)/python -m bids_app.cli.models container/models --require

# Runs the image as users run it (offline, read-only, any uid) and compares it with the venv.
container-test: $(STAMP)
	ENGINE=$(ENGINE) IMAGE=$(IMAGE) bash container/test.sh

clean:
	rm -rf $(DEMO_DIR) .pytest_cache docs/_build docs/_autosummary

# The Boutiques descriptor, generated from the option declarations (tests/test_boutiques.py
# fails when the committed file differs).
.PHONY: boutiques
boutiques: $(STAMP)
	$(BIN)/python -m bids_app.cli.boutiques --output boutiques/neurostrat.json
