"""`python -m toppo_jax.diet_coverage`: a run's policy replayed in official physics against the MJX
collision diet (issue 19). The policy here is an untrained actor of the run layout (no training
needed: what is tested is the replay and the report, not what the policy learned)."""

from __future__ import annotations

import jax
import pytest

from envs import diet
from toppo_jax import config as cfg
from toppo_jax import diet_coverage, learner, ppo
from toppo_jax.rundir import SavedPolicy

TASKS = ("reach", "push")


@pytest.fixture(scope="module")
def policy():
    config = cfg.Config()
    networks = learner.build_networks(config, 39 + len(TASKS), 4, len(TASKS))
    actor_params, _ = networks.init(jax.random.PRNGKey(0))
    return SavedPolicy(config, TASKS, networks, actor_params, ppo.init_running_stats(39), 1, (0,), 0, {})


def test_actor_acts_on_official_observations(policy):
    import numpy as np

    obs = np.linspace(-1, 1, 39)
    mean = diet_coverage.official_actor(policy, 0, 1, sampled=False)
    a, b = mean(obs), mean(obs)
    assert a.shape == (4,) and np.all(np.abs(a) <= 1) and np.array_equal(a, b)  # tanh(mean): deterministic
    sampled = diet_coverage.official_actor(policy, 0, 1, sampled=True)
    assert not np.array_equal(sampled(obs), sampled(obs))  # a fresh sample per call
    assert not np.array_equal(mean(obs), diet_coverage.official_actor(policy, 0, 0, sampled=False)(obs))  # the task id counts


def test_contacts_outside_the_diet_are_reported(policy, monkeypatch):
    """One sampled episode of reach: against the real table, and against a table cut to one pair (every
    other contact the episode makes must then be listed as outside)."""
    full = diet.load_table()
    real = diet_coverage.run_coverage(policy, ["reach"], 1, sampled=True, log=lambda *_: None)["reach"]
    assert real["episodes"] == 1 and real["seen"] >= 1
    cut = {**full, "reach": {**full["reach"], "pairs": full["reach"]["pairs"][:1]}}
    monkeypatch.setattr(diet, "_table", lambda: cut)
    got = diet_coverage.run_coverage(policy, ["reach"], 1, sampled=True, log=lambda *_: None)["reach"]
    assert got["seen"] == real["seen"]  # the same episode (seeded samples, seeded goal)
    kept = {" / ".join(p) for p in cut["reach"]["pairs"]}
    assert len(got["outside"]) >= got["seen"] - 1 and not kept & set(got["outside"])
    assert set(real["outside"]) <= set(got["outside"])


@pytest.mark.parametrize("argv, mentions", [
    (["--run", "/nonexistent/run"], "/nonexistent/run"),
    (["--run", "/nonexistent/run", "--episodes", "0"], "--episodes 0"),
])
def test_bad_input_is_one_line_and_exit_2(argv, mentions, capsys):
    assert diet_coverage.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and mentions in err[0]
