"""Data parallel on one host (`--devices N`), on CPU with 4 forced host devices.

The trainer runs in subprocesses started with XLA_FLAGS=--xla_force_host_platform_device_count=4
(the flag must be set before JAX starts). The same run on 1 and on 4 devices gives the same metrics
to float tolerance (only the order of cross-device sums differs), checkpoints of the same layout,
and a 4-device checkpoint resumes on 1 device.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_trainer_run import CHUNK, argv, read_lines, restore_final, results_only

CLI = Path(__file__).with_name("fake_train_cli.py")
FORCED = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "WANDB_MODE": "offline"}
EXTRA = ("--no-wandb", "--no-videos", "--eval-episodes", "4")


def train(out, *extra, total=4 * CHUNK, envs_per_task=4):
    args = argv(out, *EXTRA, *extra, total=total, envs_per_task=envs_per_task)
    done = subprocess.run([sys.executable, str(CLI), *args], env=FORCED,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    return done


def assert_close_metrics(a_lines, b_lines):
    assert [line["env_steps"] for line in a_lines] == [line["env_steps"] for line in b_lines]
    for a, b in zip(a_lines, b_lines):
        a, b = results_only(a), results_only(b)
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], float):
                assert a[key] == pytest.approx(b[key], rel=2e-3, abs=2e-5), key
            elif key != "member":
                assert a[key] == b[key], key


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("multidevice")
    one, four = root / "one", root / "four"
    for out, n in ((one, "1"), (four, "4")):
        done = train(out, "--devices", n)
        assert done.returncode == 0, done.stderr[-3000:]
    return {"one": one, "four": four}


def test_four_devices_give_the_metrics_of_one(runs):
    assert json.loads((runs["four"] / "config.json").read_text())["data_parallel_devices"] == 4
    assert json.loads((runs["one"] / "config.json").read_text())["data_parallel_devices"] == 1
    assert_close_metrics(read_lines(runs["one"]), read_lines(runs["four"]))


def test_checkpoints_have_the_same_layout(runs):
    (a, meta_a), (b, meta_b) = restore_final(runs["one"]), restore_final(runs["four"])
    assert meta_a["layout"] == meta_b["layout"] and meta_a["env_steps"] == meta_b["env_steps"]
    import jax

    shapes = lambda tree: [(x.shape, x.dtype) for x in jax.tree_util.tree_leaves(tree)]  # noqa: E731
    assert shapes(a) == shapes(b)
    leaves_a, leaves_b = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
               for x, y in zip(leaves_a, leaves_b) if np.asarray(x).dtype.kind == "f") < 1e-3  # fmt: skip


def test_a_four_device_checkpoint_resumes_on_one_device(runs, tmp_path):
    import shutil

    resumed = tmp_path / "resumed"
    shutil.copytree(runs["four"], resumed)
    done = train(resumed, "--devices", "1", total=6 * CHUNK)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming" in done.stderr
    longer = tmp_path / "longer"
    done = train(longer, "--devices", "1", total=6 * CHUNK)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_close_metrics(read_lines(longer), read_lines(resumed))


@pytest.mark.parametrize("devices, envs_per_task, message", [("3", 4, "does not divide --envs-per-task 4"),
                                                             ("8", 8, "this host has 4 cpu device(s)")])
def test_bad_device_counts_are_one_line_errors(tmp_path, devices, envs_per_task, message):
    done = train(tmp_path / "bad", "--devices", devices, envs_per_task=envs_per_task)
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_real_port_on_four_devices_matches_one(tmp_path):
    """The MuJoCo port under --devices 4: each device steps its share of every task's envs (shard_map, its
    own host callback); the metrics equal the 1-device run's."""
    lines = {}
    for n in ("1", "4"):
        out = tmp_path / n
        args = [
            "--tasks", "reach,push", "--seed", "0", "--total-env-steps", "160", "--out", str(out), "--devices", n,
            "--envs-per-task", "4", "--rollout-length", "10", "--num-epochs", "1", "--num-minibatches", "2",
            "--actor-hidden", "32", "32", "--critic-hidden", "32", "32", "--eval-episodes", "4", "--eval-every", "0",
            "--no-wandb", "--no-videos",
        ]  # fmt: skip
        done = subprocess.run([sys.executable, "-m", "toppo_jax.train", *args], env=FORCED, capture_output=True, text=True,
                              timeout=900, cwd=Path(__file__).resolve().parents[1])  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        lines[n] = read_lines(out)
    assert_close_metrics(lines["1"], lines["4"])
