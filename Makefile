# toppo-jax: every target sets up what it needs (a locked .venv built by uv) on a fresh machine.
UV_VERSION := 0.9.0
VENV := .venv
PY := $(VENV)/bin/python
UV := .tools/bin/uv

export PYTHONPATH := $(CURDIR)
export TOPPO_CACHE_DIR ?= $(CURDIR)/.cache/toppo_jax
export MUJOCO_GL ?= egl

TASKS ?= mt10
SEED ?= 0
EPISODES ?= 20
IMPL ?= mujoco
OUT ?= runs/$(subst $(comma),+,$(TASKS))-seed$(SEED)
ARGS ?=
comma := ,
.DEFAULT_GOAL := help

.PHONY: help install install-gpu test test-slow train parity bench plots sweep reproduce clean

help:  ## this list: every target with one line
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /\1\t/' | awk -F'\t' '{printf "  make %-12s %s\n", $$1, $$2}'

$(UV):
	python3 -m venv .tools
	.tools/bin/pip install -q uv==$(UV_VERSION)

$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked
	touch $@

install: $(VENV)/.installed  ## create .venv from uv.lock (CPU); `make install-gpu` adds the gpu extra

install-gpu: $(UV)  ## add the gpu extra (jax CUDA 12) to .venv from uv.lock
	$(UV) sync --locked --extra gpu
	touch $(VENV)/.installed

test: install  ## fast suite (CI): unit tests, state replay, expert parity, smoke training
	$(PY) -m pytest tests -n 2 --durations=15

test-slow: install  ## learning checks (minutes)
	$(PY) -m pytest tests -m slow -n 2 --durations=15

train: install  ## make train TASKS=mt10 [SEED=0] [OUT=runs/...] [ARGS="--total-env-steps 1000000"]
	$(PY) -m toppo_jax.train --tasks $(TASKS) --seed $(SEED) --out $(OUT) $(ARGS)

parity: install  ## make parity TASKS=mt10 [EPISODES=20] [SEED=0] [IMPL=mujoco] [JSON=parity.json]
	$(PY) -m envs.parity --tasks $(TASKS) --episodes $(EPISODES) --seed $(SEED) --impl $(IMPL) $(if $(JSON),--json $(JSON),)

# IMPL=jax on CPU: MT10 at 16 envs per task and every MT50 task alone at batch 16 (compile and env steps/s),
# env only; the batch sweep to 4096 is for accelerators (BATCHES=... overrides).
JAX_BENCH = --tasks mt10 --batches $(or $(BATCHES),160) --per-task $(or $(PER_TASK),16) --per-task-tasks $(or $(PER_TASK_TASKS),mt50) --skip-gym --skip-train
bench: install  ## make bench [QUICK=1] [IMPL=mujoco|warp|jax] [PER_TASK=N] [BENCH_JSON=docs/bench/<quick|full|jax>.json (+ .md table, .png scaling plot)]
	$(PY) -m experiments.bench $(if $(filter jax,$(IMPL)),$(JAX_BENCH),$(if $(QUICK),--quick --baseline docs/bench_quick_cpu.json,) $(if $(PER_TASK),--per-task $(PER_TASK),) $(if $(BATCHES),--batches $(BATCHES),)) --json $(or $(BENCH_JSON),docs/bench/$(if $(filter jax,$(IMPL)),jax,$(if $(QUICK),quick,full)).json) --impl $(IMPL)

gpu-check: install-gpu  ## on an NVIDIA GPU: device, warp MT10 parity, env-only bench, loop, time-boxed training -> runs/gpu_check/gpu_check.{json,md} [ARGS=--tiny]
	$(PY) -m experiments.gpu_check $(ARGS)

gpu-bundle: install  ## wheels + task tables for an offline GPU machine, in parts of PART_MIB (60) MiB [HAVE=its package list] [PYVER=3.12]
	$(PY) -m experiments.gpu_bundle --part-mib $(or $(PART_MIB),60) --python-version $(or $(PYVER),3.12) $(if $(HAVE),--have $(HAVE),)

sweep: install  ## make sweep SWEEP=experiments/sweeps/<name>.yaml [COUNT=N] [LOCAL=1]: wandb sweep + agent (local runs without WANDB_API_KEY or with LOCAL=1)
	$(PY) -m experiments.sweep $(if $(or $(LOCAL),$(if $(WANDB_API_KEY),,1)),local,wandb) $(SWEEP) $(if $(COUNT),--count $(COUNT),)

reproduce: install  ## make reproduce TABLE=mt10|mt50|mt50-v1|ablations-mt10|ablations-mt50|combiners-mt10 SEEDS=N [BUDGET=F] [ROWS=a,b] [JOBS=N] [ARGS="train flags"]: train the paper table's runs, write table.md/json
	$(PY) -m experiments.reproduce --table $(TABLE) --seeds $(SEEDS) $(if $(BUDGET),--budget $(BUDGET),) $(if $(ROWS),--rows $(ROWS),) $(if $(JOBS),--jobs $(JOBS),) -- $(ARGS)

plots: install  ## make plots RUN=runs/...
	$(PY) -m toppo_jax.plots --run $(RUN)

clean:  ## remove .cache, runs and .pytest_cache
	rm -rf .cache runs .pytest_cache
