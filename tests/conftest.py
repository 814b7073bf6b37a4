"""Shared test setup: persistent caches so repeated runs skip table building and XLA compiles."""

import os
import warnings
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TOPPO_CACHE_DIR", str(_ROOT / ".cache" / "toppo_jax"))
os.environ.setdefault("TOPPO_MUJOCO_THREADS", "1")  # pytest-xdist already uses both cores

from envs.backends import set_cpu_xla_flags  # noqa: E402

set_cpu_xla_flags()  # before JAX starts its CPU client (envs/backends/__init__.py: why)

import jax  # noqa: E402

jax.config.update("jax_compilation_cache_dir", str(Path(os.environ["TOPPO_CACHE_DIR"]) / "jax"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
warnings.filterwarnings("ignore", message=".*Constant\\(s\\) may be too high.*")

