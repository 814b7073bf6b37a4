"""Experiment definitions on top of toppo_jax: named presets (and later sweeps and benchmarks)."""
