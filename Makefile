# ReLabel reproduction. `make demo` and `make test` are the two commands a new machine needs (see README.md).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
SCALE ?= mini
SEEDS ?=
DRY_RUN ?=
RECORDS ?=
EXTRA ?=
ALL_ROWS ?=
SET ?=
# mini: JOBS runs at once on the cores. full: one run at a time, each spread over NPROC GPUs by torchrun (default:
# every visible GPU), never several runs sharing GPU 0.
ifeq ($(SCALE),full)
JOBS ?= 1
ifndef NPROC
NPROC := $(shell $(VPY) -c "import torch; print(max(1, torch.cuda.device_count()))" 2>/dev/null || echo 1)
endif
DRIVER = $(VENV)/bin/torchrun --standalone --nproc_per_node=$(NPROC) -m results.make
else
JOBS ?= $(shell nproc 2>/dev/null || echo 1)
DRIVER = $(VPY) -m results.make
endif
MAKE_ARGS = --scale $(SCALE) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(DRY_RUN),--dry-run) $(if $(EXTRA),--extra-rows) \
	$(foreach r,$(RECORDS),--records $(r)) $(foreach s,$(SET),--set $(s)) --jobs $(JOBS)
SETUP_VERSION := 1
STAMP := $(VENV)/.installed-$(shell cat requirements.txt tools/gxx_cxx20 | sha1sum | cut -c1-8)-v$(SETUP_VERSION)

TABLES := fig2 table2 table3 tableA1 table4 table5 table6 fig4 fig5 fig6 table7 table8 table9 table10
RENDER_ONLY := costs

.PHONY: setup demo test test-fast tables bench annotator publish claims clean-venv $(TABLES) $(RENDER_ONLY)

# Idempotent set-up: a stamp keyed by the requirement files marks a finished install.
setup: $(STAMP)

$(STAMP): requirements.txt tools/gxx_cxx20
	@test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade "pip<27"
	$(VPY) -m pip install -r requirements.txt
	@# mmcv 2.1.0 with ops must be built from source (mmdet 3.3 needs mmcv<2.2; mmcv-lite lacks mmcv.ops).
	@# -g0 cuts the build from ~25 to ~8 minutes; pip caches the wheel, so later installs take seconds.
	$(VPY) -c "import mmcv.ops" 2>/dev/null || \
	  MMCV_WITH_OPS=1 CFLAGS=-g0 CXXFLAGS=-g0 CXX=$(CURDIR)/tools/gxx_cxx20 MAX_JOBS=2 \
	  $(VPY) -m pip install --no-build-isolation mmcv==2.1.0
	$(VPY) -m pip install mmdet==3.3.0
	$(VPY) -m pip install --no-deps -e .
	@rm -f $(VENV)/.installed-*
	@touch $@
	@echo "set-up done: $(VENV)"

# Trains the demo's runs here (the committed records are read only for the comparison); ALL_ROWS=1: every row.
# Without JOBS=, the demo picks how many run at once (results/demo.py: default_jobs).
demo: setup
	$(VPY) -m results.demo --scale $(SCALE) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(ALL_ROWS),--all-rows) \
	  $(if $(filter command line environment,$(origin JOBS)),--jobs $(JOBS))

test: setup
	$(VPY) -m pytest -q --durations=15 tests

test-fast: setup
	$(VPY) -m pytest -q -m "not slow" --durations=15 tests

tables: setup
	$(DRIVER) $(TABLES) $(MAKE_ARGS)

# `make table3 table7` is one driver call: the targets share one pool of workers and a run both need runs once.
# The first table goal runs them all; the others have nothing left to do.
TABLE_GOALS := $(filter $(TABLES),$(MAKECMDGOALS))
$(TABLES): setup
	@if [ "$@" = "$(firstword $(TABLE_GOALS))" ] || [ -z "$(TABLE_GOALS)" ]; then \
	  echo "$(DRIVER) $(or $(TABLE_GOALS),$@) $(MAKE_ARGS)"; \
	  $(DRIVER) $(or $(TABLE_GOALS),$@) $(MAKE_ARGS); \
	fi

$(RENDER_ONLY): setup  # the costs table: filled by `make bench` records, nothing to train
	$(VPY) -m results.make $@ --scale $(SCALE) --no-run

bench: setup
	$(VPY) -m bench.bench_step --out runs/bench/bench_step.json
	$(VPY) -m bench.bench_loader --pin --interleave --out runs/bench/bench_loader.json
	$(VPY) -m bench.bench_pooling --out runs/bench/bench_pooling.json --scale $(SCALE) \
		--records $$($(VPY) -c "from relabel.records import default_records_path as p; print(p('$(SCALE)'))")
	$(VPY) -m results.make costs --scale $(SCALE) --no-run

# Commit the results: the records the tables read go to results/records/$(SCALE).jsonl, and every table, figure
# and the claims ledger are rendered from that file alone into results/$(SCALE)/ (python -m results.publish --help).
# The default mini annotator, trained here once (27.6 min on one bf16-native core) and published under pretrain/published/ for every
# mini run (issue 15): commit the .safetensors and .json it writes.
annotator: setup
	$(VPY) -m pretrain.publish_annotator

publish: setup
	$(VPY) -m results.publish --scale $(SCALE) $(foreach r,$(RECORDS),--records $(r))

# The claims ledger (results/$(SCALE)/claims.md, .csv) and README.md's claims block, from the committed records.
claims: setup
	$(VPY) -m results.publish --claims --scale $(SCALE)

clean-venv:
	rm -rf $(VENV)
