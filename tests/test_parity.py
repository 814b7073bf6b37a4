"""Expert parity on the mujoco backend: the official scripted experts succeed on the port as often
as on official Meta-World (within 0.05), over 20 episodes on distinct goals per task."""

import pytest

import envs
from envs import parity

EPISODES = 20


@pytest.mark.parametrize("task", sorted(envs.TASKS))
def test_expert_parity(task):
    result = parity.run(task, episodes=EPISODES, seed=0, log=lambda *_: None)
    row = result["tasks"][task]
    assert row["episodes"] == EPISODES
    assert abs(row["port"] - row["official"]) <= 0.05, row
