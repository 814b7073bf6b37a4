"""Multi-host runs (`jax.distributed`), on CPU: two trainer processes on localhost joined through
JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID, one device each, collectives over gloo.

The 2-process run must give the metrics of the 1-process run on the same number of devices (two forced
host devices), write the run directory once (process 0), and leave a checkpoint that resumes in one
process like the 1-process run's own checkpoint.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from test_multidevice import CLI, EXTRA, assert_close_metrics
from test_trainer_run import CHUNK, argv, read_lines, restore_final

from toppo_jax import distributed

TIMEOUT = 600


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_COORDINATOR", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID", "SLURM_", "OMPI_"))}
    return {**env, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", "WANDB_MODE": "offline", **extra}


def train_single(out, total=4 * CHUNK):
    """One process with two (forced host) devices."""
    args = argv(out, *EXTRA, "--devices", "0", total=total, envs_per_task=4)
    return subprocess.run([sys.executable, str(CLI), *args], env=_env(2), capture_output=True, text=True, timeout=TIMEOUT)


def train_dual(out, total=4 * CHUNK, extra_env=None):
    """Two processes with one device each, joined on localhost; returns [(returncode, stderr)] by process."""
    args = argv(out, *EXTRA, "--devices", "0", total=total, envs_per_task=4)
    port = _free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, str(CLI), *args],
            env=_env(1, **{"JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": str(i),
                           **(extra_env or {})}),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        for i in range(2)
    ]
    results = []
    try:
        for p in procs:
            _, err = p.communicate(timeout=TIMEOUT)
            results.append((p.returncode, err))
    finally:
        for p in procs:
            p.kill()
    return results


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("multihost")
    single, dual = root / "single", root / "dual"
    done = train_single(single)
    assert done.returncode == 0, done.stderr[-3000:]
    results = train_dual(dual)
    for i, (code, err) in enumerate(results):
        assert code == 0, f"process {i}: {err[-3000:]}"
    return {"single": single, "dual": dual, "dual_stderr": [err for _, err in results]}


def test_two_processes_give_the_metrics_of_one(runs):
    info = json.loads((runs["dual"] / "config.json").read_text())
    assert info["processes"] == 2 and info["data_parallel_devices"] == 2 and len(info["devices"]) == 2
    assert json.loads((runs["single"] / "config.json").read_text())["processes"] == 1
    lines = read_lines(runs["dual"])
    assert len({line["env_steps"] for line in lines}) == len(lines) == 4  # written once, by process 0
    assert_close_metrics(read_lines(runs["single"]), lines)


def test_only_process_zero_reports(runs):
    primary, other = runs["dual_stderr"]
    assert "physics:" in primary and "physics:" not in other


def test_the_checkpoint_has_the_one_process_layout(runs):
    (a, meta_a), (b, meta_b) = restore_final(runs["single"]), restore_final(runs["dual"])
    assert meta_a["layout"] == meta_b["layout"] and meta_a["env_steps"] == meta_b["env_steps"]
    import jax

    shapes = lambda tree: [(x.shape, x.dtype) for x in jax.tree_util.tree_leaves(tree)]  # noqa: E731
    assert shapes(a) == shapes(b)


def test_a_two_process_checkpoint_resumes_in_one_process(runs, tmp_path):
    from_dual, from_single = tmp_path / "from_dual", tmp_path / "from_single"
    shutil.copytree(runs["dual"], from_dual)
    shutil.copytree(runs["single"], from_single)
    for out in (from_dual, from_single):
        done = train_single(out, total=6 * CHUNK)
        assert done.returncode == 0 and "resuming" in done.stderr, done.stderr[-3000:]
    assert_close_metrics(read_lines(from_single), read_lines(from_dual))


def test_a_launch_that_cannot_be_joined_is_one_line_on_every_process(tmp_path):
    results = train_dual(tmp_path / "bad", extra_env={"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "7"})
    for code, err in results:
        assert code == 2 and err.strip().splitlines() == [
            "error: --distributed auto: JAX_PROCESS_ID=7 is out of range; valid: 0..1 (JAX_NUM_PROCESSES=2)"
        ], err


@pytest.mark.parametrize(
    "environ, launcher",
    [
        ({}, None),
        ({"JAX_COORDINATOR_ADDRESS": "h:1234", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"}, "env"),
        ({"JAX_COORDINATOR_ADDRESS": "h:1234", "JAX_NUM_PROCESSES": "1"}, None),
        ({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}, None),  # sbatch/srun with one task: a single process
        ({"SLURM_PROCID": "3", "SLURM_NTASKS": "8", "SLURM_STEP_NUM_TASKS": "8"}, "slurm"),
        ({"SLURM_JOB_ID": "5", "SLURM_NTASKS": "8"}, None),  # the batch script itself, outside srun
        ({"OMPI_COMM_WORLD_SIZE": "4"}, "ompi"),
        ({"TPU_WORKER_HOSTNAMES": "t0,t1,t2,t3"}, "tpu"),
        ({"TPU_WORKER_HOSTNAMES": "t0"}, None),
    ],
)
def test_the_launcher_is_detected_from_the_environment(environ, launcher):
    assert distributed.detect_launcher(environ) == launcher


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2"}, "JAX_PROCESS_ID is not"),
        ({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"}, "JAX_PROCESS_ID=2 is out of range; valid: 0..1"),
        ({"JAX_COORDINATOR_ADDRESS": "h", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0"}, "needs a port"),
        ({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "two", "JAX_PROCESS_ID": "0"}, "JAX_NUM_PROCESSES='two' is not an integer"),
    ],
)
def test_bad_launch_variables_are_named(environ, message):
    with pytest.raises(distributed.DistributedError, match=message):
        distributed.join_arguments(distributed.detect_launcher(environ) or "env", environ)


def test_a_single_process_never_joins():
    assert distributed.initialize("off", {"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2"}) == distributed.Cluster()
    assert distributed.initialize("auto", {}).process_count == 1


def test_validating_a_run_starts_no_jax_backend():
    """jax.distributed.initialize must come before any backend starts: importing the port and the trainer,
    resolving tasks and validating the config must not start one (a module-level jnp array would)."""
    code = (
        "import jax._src.xla_bridge as xb\n"
        "import envs, toppo_jax.train as t, toppo_jax.evaluate, toppo_jax.presets\n"
        "config = t.parse_args(['--tasks', 'mt50'])\n"
        "from toppo_jax import config as cfg\n"
        "cfg.validate(config, len(t.resolve_tasks('mt50')))\n"
        "print('started' if xb._backends else 'none')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])  # fmt: skip
    assert done.stdout.strip() == "none", done.stderr[-2000:]


@pytest.mark.slow
def test_real_port_in_two_processes_matches_one(tmp_path):
    """The MuJoCo port across two processes: each steps its envs through its own host callback.
    Slow (~2.5 min on 2 cores): `make test` covers the callback per device in one process
    (test_multidevice) and the 2-process trainer on the fake env."""
    args = lambda out: [  # noqa: E731
        "-m", "toppo_jax.train", "--tasks", "reach,push", "--seed", "0", "--total-env-steps", "160", "--out", str(out),
        "--devices", "0", "--envs-per-task", "4", "--rollout-length", "10", "--num-epochs", "1", "--num-minibatches", "2",
        "--actor-hidden", "32", "32", "--critic-hidden", "32", "32", "--eval-episodes", "4", "--eval-every", "0",
        "--no-wandb", "--no-videos",
    ]  # fmt: skip
    root = Path(__file__).resolve().parents[1]
    single = subprocess.run([sys.executable, *args(tmp_path / "single")], env=_env(2), capture_output=True, text=True,
                            timeout=TIMEOUT, cwd=root)  # fmt: skip
    assert single.returncode == 0, single.stderr[-3000:]
    port = _free_port()
    procs = [
        subprocess.Popen([sys.executable, *args(tmp_path / "dual")], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=_env(1, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(i)))
        for i in range(2)
    ]  # fmt: skip
    try:
        for i, p in enumerate(procs):
            _, err = p.communicate(timeout=TIMEOUT)
            assert p.returncode == 0, f"process {i}: {err[-3000:]}"
    finally:
        for p in procs:
            p.kill()
    assert_close_metrics(read_lines(tmp_path / "single"), read_lines(tmp_path / "dual"))
