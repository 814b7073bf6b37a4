"""Expert parity on the mujoco backend: the official scripted experts succeed on the port as often
as on official Meta-World, on distinct goals per task.

`make test-slow` checks the acceptance figure, |port - official| <= 0.05 over 20 episodes (the
committed `make parity` tables, docs/port.md). The fast suite runs 5 episodes per task and allows one
episode to differ: the port starts MuJoCo's solver cold at every control step (docs/port.md), which
flips an episode that official only just succeeds (peg-unplug-side goal 23: the plug ends 0.0726
from the target against a 0.07 threshold; official stepped with a cold start fails it too).
"""

import pytest

import envs
from envs import parity

TASKS = sorted(envs.TASKS)


def check_parity(task, episodes, max_gap):
    result = parity.run(task, episodes=episodes, seed=0, log=lambda *_: None)
    row = result["tasks"][task]
    assert row["episodes"] == episodes
    assert abs(row["port"] - row["official"]) <= max_gap + 1e-9, row


@pytest.mark.parametrize("task", TASKS)
def test_expert_parity_5_episodes(task):
    check_parity(task, 5, max_gap=1 / 5)


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_expert_parity_20_episodes(task):
    check_parity(task, 20, max_gap=0.05)


def test_replay_cli_runs_the_backend_it_names(monkeypatch, tmp_path):
    """`--replay --impl jax` replays on that backend (it used to replay on the default one silently)."""
    seen = {}

    def fake_report(tasks, seed, reward_version, impl):
        seen.update(tasks=tasks, impl=impl)
        return {"reach": {"obs": 0.0}}

    monkeypatch.setattr(parity, "replay_report", fake_report)
    out = tmp_path / "r.json"
    assert parity.main(["--replay", "--tasks", "reach", "--impl", "jax", "--json", str(out)]) == 0
    assert seen == {"tasks": "reach", "impl": "jax"} and out.exists()
    assert parity.main(["--replay", "--tasks", "reach", "--impl", "mjx"]) == 2
