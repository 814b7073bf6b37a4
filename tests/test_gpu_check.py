"""The accelerator check (experiments/gpu_check.py): the whole check at CPU sizes, end to end, so it
cannot rot; a broken step stops it with exit 1 and later steps never run; the GPU sizes on a GPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from experiments import gpu_check

ROOT = Path(__file__).resolve().parents[1]


def _report(out: Path) -> dict:
    return json.loads((out / "gpu_check.json").read_text())


def test_tiny_check_runs_every_step_and_writes_the_report(tmp_path):
    out = tmp_path / "check"
    done = subprocess.run([sys.executable, "-m", "experiments.gpu_check", "--tiny", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = _report(out)
    assert report["status"] == "ok" and list(report["steps"]) == list(gpu_check.STEPS)
    steps = {k: v["result"] for k, v in report["steps"].items()}
    assert steps["device"]["jax_backend"] == "cpu" and steps["device"]["versions"]["mujoco"]
    assert steps["parity"]["tasks"]["reach"]["official"] == steps["parity"]["tasks"]["reach"]["port"] == 1.0
    rows = steps["bench"]["rows"]
    assert [(r["tasks"], r["batch"]) for r in rows] == [("reach", 2), ("reach,push", 2)]
    assert all(r["env_steps_per_s"] > 0 and r["first_call_s"] > 0 for r in rows)
    assert steps["loop"]["env_steps_per_s"] > 0 and steps["loop"]["num_envs"] == 2
    # 40 env steps = two chunks of 2 envs x 10 steps: the whole run (its time box is 300 s)
    assert steps["training"]["env_steps"] == 40 and steps["training"]["chunks"] == 2
    assert set(report["compile_s"]) == {"bench reach batch 2", "bench reach,push batch 2", "loop (training chunk)",
                                        "training (chunk + evaluation)"}  # fmt: skip
    md = (out / "gpu_check.md").read_text()
    assert "| training | ok |" in md and "| reach,push | 2 |" in md and "Full TOPPO loop, reach" in md


def test_a_broken_step_stops_the_check_with_exit_1(tmp_path, capsys):
    """A parity gap over the allowed one fails at parity: bench, loop and training never start."""
    out = tmp_path / "check"
    assert gpu_check.main(["--tiny", "--out", str(out), "--parity-max-gap", "-1"]) == gpu_check.EXIT_BROKEN
    report = _report(out)
    assert report["status"] == "failed" and report["failed"]["step"] == "parity"
    assert "success gap over -1.0" in report["failed"]["error"] and "reach" in report["failed"]["error"]
    assert {k: v["status"] for k, v in report["steps"].items()} == {"device": "ok", "parity": "failed"}
    assert "gpu-check FAILED at step 'parity'" in capsys.readouterr().err
    assert "**Failed at `parity`**" in (out / "gpu_check.md").read_text()


def test_a_failing_training_run_fails_the_training_step(tmp_path):
    out = tmp_path / "check"
    rc = gpu_check.main(["--tiny", "--out", str(out), "--steps", "training", "--train-extra=--no-such-flag"])
    assert rc == gpu_check.EXIT_BROKEN
    failed = _report(out)["failed"]
    assert failed["step"] == "training" and "training exited 2" in failed["error"] and "no-such-flag" in failed["error"]


@pytest.mark.skipif(jax.default_backend() == "gpu", reason="this machine has a GPU")
def test_without_a_gpu_the_gpu_sizes_fail_at_the_device_step(tmp_path):
    out = tmp_path / "check"
    assert gpu_check.main(["--out", str(out)]) == gpu_check.EXIT_BROKEN
    failed = _report(out)["failed"]
    assert failed["step"] == "device" and "no GPU for JAX: backend is 'cpu'" in failed["error"]


def test_bad_loop_sizes_are_refused_before_anything_runs(capsys):
    with pytest.raises(SystemExit) as e:
        gpu_check.parse(["--tiny", "--loop-rollout", "10", "--loop-envs-per-task", "3"])
    assert e.value.code == 2
    assert "--loop-envs-per-task 3 x --loop-rollout 10 must be a multiple of the loop's 8 minibatches" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.skipif(jax.default_backend() != "gpu", reason="needs an NVIDIA GPU")
def test_gpu_sizes_on_a_gpu(tmp_path):
    """The check itself at its GPU defaults (about 8 minutes)."""
    out = tmp_path / "check"
    rc = gpu_check.main(["--out", str(out)])
    assert rc in (0, gpu_check.EXIT_OVER_BUDGET), _report(out).get("failed")
    assert _report(out)["steps"]["parity"]["result"]["impl"] == "warp"
