"""Issue 10: faults, bad input and determinism on the fake env, with nothing lost.

A real training process killed (SIGKILL) at a random point, or stopped (SIGTERM/SIGINT), then rerun,
ends equal to an uninterrupted run bit for bit; unreadable checkpoints are set aside and the one before
is used; non-finite values stop training naming the step, task and quantity before anything is
saved (or roll back with a halved learning rate); a second process on the same run directory refuses.
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import conftest_fake_env as fake
import numpy as np
import pytest
from test_trainer_run import CHUNK, argv, leaves, read_lines, restore_final, results_only, runs, train_main  # noqa: F401

from toppo_jax import checkpoint, rundir, train

CLI = Path(__file__).with_name("fake_train_cli.py")


def assert_equals_the_uninterrupted_run(run_dir, full_dir):
    full, part = read_lines(full_dir), read_lines(run_dir)
    assert [line["env_steps"] for line in part] == [CHUNK * i for i in range(1, 6)]
    assert [results_only(line) for line in part] == [results_only(line) for line in full]
    a, b = leaves(restore_final(full_dir)[0]), leaves(restore_final(run_dir)[0])
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes()


def start_process(out, pause):
    log = open(out.parent / f"{out.name}.stderr", "w")
    env = {**os.environ, "FAKE_TRAIN_CHUNK_PAUSE": str(pause)}
    proc = subprocess.Popen([sys.executable, str(CLI), *argv(out, "--no-wandb")], env=env, stdout=subprocess.DEVNULL, stderr=log)
    return proc, log


def wait_for_first_line(proc, out, timeout=240):
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metrics.exists() and metrics.read_text().count("\n") >= 1:
            return
        assert proc.poll() is None, f"the training process ended early with code {proc.returncode}"
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("no chunk was logged in time")


def test_sigkill_at_a_random_point_then_rerun_equals_the_uninterrupted_run(runs, tmp_path):
    out = tmp_path / "run"
    proc, log = start_process(out, pause=0.3)
    wait_for_first_line(proc, out)
    delay = random.uniform(0.0, 1.2)  # somewhere in chunks 1-5 (0.3 s each), during a save or a chunk
    time.sleep(delay)
    proc.kill()
    proc.wait()
    log.close()
    # The same command again: it resumes from the last complete checkpoint (or starts afresh).
    rerun = subprocess.run([sys.executable, str(CLI), *argv(out, "--no-wandb")], capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert_equals_the_uninterrupted_run(out, runs["full"]), f"killed after {delay:.2f} s"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_finish_the_chunk_checkpoint_and_exit_0(runs, tmp_path, sig):
    out = tmp_path / "run"
    proc, log = start_process(out, pause=0.5)
    wait_for_first_line(proc, out)
    proc.send_signal(sig)
    assert proc.wait(timeout=120) == 0
    log.close()
    stderr = (tmp_path / "run.stderr").read_text()
    assert f"received {sig.name}" in stderr and "rerun the same command to resume" in stderr
    lines = read_lines(out)
    reader = checkpoint.Checkpointer(out / checkpoint.CHECKPOINTS, read_only=True)
    latest = reader.latest_step()
    reader.close()
    assert lines and latest == lines[-1]["env_steps"] < 5 * CHUNK  # stopped early, nothing after the checkpoint
    rerun = subprocess.run([sys.executable, str(CLI), *argv(out, "--no-wandb")], capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert_equals_the_uninterrupted_run(out, runs["full"])


def _truncate_largest_file(step_dir: Path):
    files = sorted((p for p in step_dir.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    victim = files[-1]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])


def _remove_meta_item(step_dir: Path):
    shutil.rmtree(step_dir / "meta")


@pytest.mark.parametrize("damage", [_truncate_largest_file, _remove_meta_item], ids=["truncated-file", "missing-item"])
def test_unreadable_latest_checkpoint_is_set_aside_and_the_previous_one_used(runs, tmp_path, capsys, damage):
    out = tmp_path / "run"
    shutil.copytree(runs["full"], out)
    damage(out / checkpoint.CHECKPOINTS / str(5 * CHUNK))
    assert train_main(argv(out, "--no-wandb")) == 0
    err = capsys.readouterr().err
    assert f"checkpoint {out.absolute() / checkpoint.CHECKPOINTS / str(5 * CHUNK)} is unreadable" in err
    assert f"resuming {out} from its checkpoint at {4 * CHUNK:,} env steps" in err
    assert (out / checkpoint.UNREADABLE).is_dir()
    assert_equals_the_uninterrupted_run(out, runs["full"])  # chunk 5 recomputed and saved again


def test_no_readable_checkpoint_is_one_clear_error(runs, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(runs["full"], out)
    for step_dir in (out / checkpoint.CHECKPOINTS).iterdir():
        if step_dir.name.isdigit():
            _remove_meta_item(step_dir)
    assert train_main(argv(out, "--no-wandb")) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: no readable checkpoint in") and "--overwrite" in err


def nan_main(out, *extra):
    # Task fake-reach-1's rewards turn NaN from step call 50: chunk 3 (calls 40-59), its 2nd iteration.
    return train.main(
        argv(out, "--no-wandb", *extra),
        make_env=fake.fake_factory(episode_length=15, nan_task="fake-reach-1", nan_after=50),
        task_catalog=(fake.GROUPS, fake.TASKS),
        compiler_options=fake.FAST_COMPILE,
    )


def test_nan_stops_training_naming_step_task_and_quantity_and_saves_nothing_of_it(tmp_path, capsys):
    out = tmp_path / "run"
    assert nan_main(out) == 3
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: training diverged")
    assert "env reward/obs of task(s) fake-reach-1;" in err  # only the poisoned task's env output
    assert "env steps 800-960" in err  # chunk 3 = env steps 640-960, its second iteration
    assert f"last good checkpoint ({2 * CHUNK:,} env steps) is kept" in err
    reader = checkpoint.Checkpointer(out / checkpoint.CHECKPOINTS, read_only=True)
    assert reader.steps() == [2 * CHUNK]
    state, _ = reader.restore_raw(2 * CHUNK)
    reader.close()
    assert all(np.all(np.isfinite(x)) for x in leaves(state) if np.issubdtype(x.dtype, np.floating))
    assert [line["env_steps"] for line in read_lines(out)] == [CHUNK, 2 * CHUNK]


def test_nan_rollbacks_restore_the_last_checkpoint_with_a_halved_learning_rate(tmp_path, capsys):
    out = tmp_path / "run"
    assert nan_main(out, "--nan-rollbacks", "2") == 3  # the poison is in the env: it comes back every time
    err = capsys.readouterr().err
    assert f"rolled back to the checkpoint at {2 * CHUNK:,} env steps with the learning rate x 0.5 (1 rollback(s) left)" in err
    assert "learning rate x 0.25 (0 rollback(s) left)" in err
    assert err.strip().splitlines()[-1].startswith("error: training diverged")
    assert [line["env_steps"] for line in read_lines(out)] == [CHUNK, 2 * CHUNK]


def test_a_second_run_on_the_same_directory_refuses(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    lock = rundir.RunLock(out)
    try:
        assert train_main(argv(out, "--no-wandb")) == 2
    finally:
        lock.release()
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"--out {out} is in use by another training run (pid {os.getpid()}" in err
    assert not (out / "config.json").exists()


def test_unwritable_output_directory_is_bad_input(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert train_main(argv(blocker / "run", "--no-wandb")) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"--out {blocker / 'run'} is not writable" in err


def test_same_seed_and_config_give_identical_metrics(runs, tmp_path):
    out = tmp_path / "again"
    assert train_main(argv(out, "--no-wandb")) == 0
    assert [results_only(x) for x in read_lines(out)] == [results_only(x) for x in read_lines(runs["full"])]
    config = json.loads((out / "config.json").read_text())
    assert config["seeds"] == [0]
