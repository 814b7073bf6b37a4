"""Expert parity on the mujoco backend: the official scripted experts succeed on the port as often
as on official Meta-World (within 0.05) on distinct goals per task: 5 episodes per task in the fast
suite, 20 in `make test-slow` (and in the committed `make parity` tables, docs/port.md)."""

import pytest

import envs
from envs import parity

TASKS = sorted(envs.TASKS)


def check_parity(task, episodes):
    result = parity.run(task, episodes=episodes, seed=0, log=lambda *_: None)
    row = result["tasks"][task]
    assert row["episodes"] == episodes
    assert abs(row["port"] - row["official"]) <= 0.05, row


@pytest.mark.parametrize("task", TASKS)
def test_expert_parity_5_episodes(task):
    check_parity(task, 5)


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_expert_parity_20_episodes(task):
    check_parity(task, 20)
