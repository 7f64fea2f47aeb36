# The two commands of the README:  `make run`  and  `make test`.
# Each sets up what it needs on a new machine (a virtualenv in .venv) and is quick when it is there.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=

# llama-cpp-python compiles llama.cpp. A -march=native build dies with "Illegal instruction" on
# virtual machines whose CPU advertises AMX without enabling it (seen on this project's machines),
# so x86-64 builds target a portable AVX2 baseline. The built wheel is kept outside the clone,
# keyed by version and flags, so later clones on the same machine skip the ~9 minute build.
LLAMA_CPP_VERSION := 0.3.36
ARCH := $(shell uname -m)
ifeq ($(ARCH),x86_64)
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
else
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF
endif
WHEEL_KEY := $(shell printf '%s %s %s' '$(LLAMA_CPP_VERSION)' '$(ARCH)' '$(LLAMA_CMAKE_ARGS)' | cksum | cut -d' ' -f1)
WHEELS := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/tedchat-build/wheels-$(WHEEL_KEY)

.PHONY: run test lint format clean

run: $(VENV)/.run-installed
	$(BIN)/tedchat $(ARGS)

test: $(VENV)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest $(ARGS)

lint: $(VENV)/.test-installed
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(VENV)/.test-installed
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(WHEELS)/.built: | $(BIN)/python
	mkdir -p $(WHEELS)
	@echo "building llama-cpp-python $(LLAMA_CPP_VERSION) (compiles llama.cpp; several minutes, once)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip wheel --no-deps --no-cache-dir -w $(WHEELS) \
		llama-cpp-python==$(LLAMA_CPP_VERSION)
	touch $@

$(VENV)/.run-installed: pyproject.toml $(WHEELS)/.built | $(BIN)/python
	$(BIN)/pip install -q --find-links $(WHEELS) -e '.[bundled]' llama-cpp-python==$(LLAMA_CPP_VERSION)
	touch $@

$(VENV)/.test-installed: pyproject.toml $(WHEELS)/.built | $(BIN)/python
	$(BIN)/pip install -q --find-links $(WHEELS) -e '.[bundled,test]' 'llama-cpp-python[server]==$(LLAMA_CPP_VERSION)'
	touch $@ $(VENV)/.run-installed

clean:
	rm -rf $(VENV)
