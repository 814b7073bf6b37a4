"""The run directory on the fake env: checkpoints and exact resume, config/layout refusals, wandb
(offline, and broken), plots, and evaluating a saved run (contract 3 without --reference)."""

import fcntl
import json
import os
import sys
import types

import conftest_fake_env as fake
import imageio.v2 as imageio
import jax
import numpy as np
import pytest

from toppo_jax import checkpoint, evaluate, learner, logger, plots, rundir, train
from toppo_jax import config as cfg

TASKS = ("fake-reach-0", "fake-reach-1", "fake-reach-2", "fake-home")
ENVS_PER_TASK, LENGTH, K = 4, 10, 2
CHUNK = K * LENGTH * ENVS_PER_TASK * len(TASKS)  # 320 env steps per chunk
TIMING_KEYS = ("sps",)  # and every perf/* key: wall-clock measurements, not results


def argv(out, *extra, total=5 * CHUNK, tasks=",".join(TASKS), envs_per_task=ENVS_PER_TASK):
    return [
        "--tasks", tasks, "--total-env-steps", str(total), "--out", str(out),
        "--envs-per-task", str(envs_per_task), "--rollout-length", str(LENGTH), "--iterations-per-chunk", str(K),
        "--num-epochs", "2", "--num-minibatches", "4", "--actor-hidden", "32", "32", "--critic-hidden", "32", "32",
        "--eval-every", str(2 * CHUNK), "--checkpoint-every", str(2 * CHUNK), "--eval-episodes", "5",
        "--worst-k", "1", "2", "--eval-stochastic", *extra,
    ]  # fmt: skip


def train_main(args):
    return train.main(
        args, make_env=fake.fake_factory(episode_length=15), task_catalog=(fake.GROUPS, fake.TASKS), compiler_options=fake.FAST_COMPILE
    )


def read_lines(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def results_only(line):
    return {k: v for k, v in line.items() if k not in TIMING_KEYS and not k.startswith("perf/")}


def leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def _make_runs(root):
    """An uninterrupted run (wandb offline), and a run killed just before its second checkpoint, then resumed."""
    full, part = root / "full", root / "part"
    old_mode = os.environ.get("WANDB_MODE")
    os.environ["WANDB_MODE"] = "offline"  # never the network, whatever the machine's setting
    try:
        assert train_main(argv(full)) == 0
    finally:
        if old_mode is None:
            os.environ.pop("WANDB_MODE")
        else:
            os.environ["WANDB_MODE"] = old_mode

    # Kill at the save of env step 1280: its metrics (and 960's) are written, the last checkpoint is 640.
    save = checkpoint.Checkpointer.save

    def killed_at_1280(self, step, *args, **kwargs):
        if step == 4 * CHUNK:
            raise KeyboardInterrupt("simulated kill")
        return save(self, step, *args, **kwargs)

    checkpoint.Checkpointer.save = killed_at_1280
    try:
        with pytest.raises(KeyboardInterrupt):
            train_main(argv(part, "--no-wandb"))
    finally:
        checkpoint.Checkpointer.save = save
    reader = checkpoint.Checkpointer(part / checkpoint.CHECKPOINTS, read_only=True)
    killed = {"steps": reader.steps(), "lines": [line["env_steps"] for line in read_lines(part)]}
    reader.close()
    assert train_main(argv(part, "--no-wandb")) == 0  # the same command again: resume
    (root / "killed.json").write_text(json.dumps(killed))


@pytest.fixture(scope="session")
def runs(request, tmp_path_factory):
    """The runs of `_make_runs`, made once per test session: xdist workers share them through a lock."""
    if getattr(request.config, "workerinput", None) is None:  # no xdist
        root = tmp_path_factory.mktemp("runs")
        _make_runs(root)
    else:
        root = tmp_path_factory.getbasetemp().parent / "toppo_runs"  # the session's folder, shared by workers
        root.mkdir(exist_ok=True)
        with open(root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # the second worker waits for the first one's runs
            if not (root / "killed.json").exists():
                _make_runs(root)
    return {"full": root / "full", "part": root / "part", "killed": json.loads((root / "killed.json").read_text())}


def restore_final(run_dir):
    reader = checkpoint.Checkpointer(run_dir / checkpoint.CHECKPOINTS, read_only=True)
    try:
        state, meta = reader.restore_raw(reader.latest_step())
    finally:
        reader.close()
    return state, meta


def test_resume_after_a_kill_equals_the_uninterrupted_run_bit_for_bit(runs):
    assert runs["killed"] == {"steps": [2 * CHUNK], "lines": [CHUNK, 2 * CHUNK, 3 * CHUNK, 4 * CHUNK]}
    full, part = read_lines(runs["full"]), read_lines(runs["part"])
    # Lines past the restored checkpoint were dropped and written again: no duplicates, same values.
    assert [line["env_steps"] for line in part] == [CHUNK * i for i in range(1, 6)]
    assert [results_only(line) for line in part] == [results_only(line) for line in full]
    assert "perf/compile_s" in part[2]  # the resumed session's first line
    # The run's wall clock carries over the resume: it keeps growing from the restored line's value.
    walls = [line["perf/wall_s"] for line in part]
    assert all(w > 0 for w in walls) and walls == sorted(walls)
    state_full, meta_full = restore_final(runs["full"])
    state_part, meta_part = restore_final(runs["part"])
    assert meta_full["env_steps"] == meta_part["env_steps"] == 5 * CHUNK
    a, b = leaves(state_full), leaves(state_part)
    assert len(a) == len(b) > 40  # params, both optimizer states, PopArt, normaliser, env state, RNG, counters
    for x, y in zip(a, b):
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes()
    # The run really moved on after the restore (not a copy of the checkpoint it resumed from).
    reader = checkpoint.Checkpointer(runs["part"] / checkpoint.CHECKPOINTS, read_only=True)
    early, _ = reader.restore_raw(reader.steps()[0])
    reader.close()
    assert not np.array_equal(early["actor_params"]["params"]["head"]["kernel"], state_part["actor_params"]["params"]["head"]["kernel"])


def test_checkpoint_meta_records_the_host_state(runs):
    state, meta = restore_final(runs["full"])
    saved = json.loads((runs["full"] / "config.json").read_text())
    assert meta["chunk"] == 4 and meta["env_steps"] == int(state["env_steps"]) == 5 * CHUNK
    assert meta["layout"] == {"tasks": list(TASKS), "envs_per_task": ENVS_PER_TASK, "num_seeds": 1}
    assert meta["config_hash"] == saved["config_hash"] and meta["wandb_run_id"] == saved["wandb_run_id"]
    assert meta["eval/success_mean"] == pytest.approx(read_lines(runs["full"])[-1]["eval/success_mean"])
    assert {"jax", "mujoco", "orbax-checkpoint"} <= set(saved["versions"]) and saved["backend"] == "cpu"


def test_wandb_offline_run_is_written_under_the_run_dir(runs):
    _, meta = restore_final(runs["full"])
    run_id = meta["wandb_run_id"]
    offline = [p for p in (runs["full"] / "wandb").iterdir() if p.name.startswith("offline-run-") and p.name.endswith(run_id)]
    assert len(offline) == 1
    assert (offline[0] / f"run-{run_id}.wandb").stat().st_size > 0


@pytest.mark.parametrize(
    "change, mentions",
    [
        ({"tasks": "fake-reach-0,fake-reach-1,fake-reach-3,fake-home"}, "env.tasks"),
        ({"envs_per_task": 8}, "env.envs_per_task 4 -> 8"),
    ],
)
def test_rerun_with_another_task_set_or_layout_exits_2_and_touches_nothing(runs, capsys, change, mentions):
    before = (runs["full"] / "metrics.jsonl").read_text()
    assert train_main(argv(runs["full"], "--no-wandb", **change)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and mentions in err and "--overwrite" in err
    assert (runs["full"] / "metrics.jsonl").read_text() == before


def _abstract_state(tasks, envs_per_task):
    config = train.parse_args(argv("unused", envs_per_task=envs_per_task))
    env = fake.make_fake_multitask(tasks, envs_per_task, episode_length=15)
    trainer = learner.make_train(config, env)
    return jax.eval_shape(trainer.init, jax.random.PRNGKey(0)), checkpoint.layout(tasks, envs_per_task, 1)


@pytest.mark.parametrize(
    "tasks, envs_per_task, mentions",
    [
        (("fake-reach-0", "fake-reach-1", "fake-reach-3", "fake-home"), ENVS_PER_TASK, "tasks"),
        (TASKS, 8, "envs_per_task = 4 but this run has envs_per_task = 8"),
    ],
)
def test_restore_into_another_layout_names_the_mismatch(runs, tasks, envs_per_task, mentions):
    target, layout = _abstract_state(tasks, envs_per_task)
    reader = checkpoint.Checkpointer(runs["full"] / checkpoint.CHECKPOINTS, read_only=True)
    try:
        with pytest.raises(checkpoint.CheckpointMismatchError) as err:
            reader.restore(target, layout)
        assert mentions in str(err.value) and "\n" not in str(err.value)
        # Without the layout check, the shape check still names the first leaf that differs.
        if envs_per_task != ENVS_PER_TASK:
            with pytest.raises(checkpoint.CheckpointMismatchError, match=r"env_state\..* has shape \(16,"):
                reader.restore(target)
    finally:
        reader.close()


def test_checkpointer_keeps_the_last_n_and_the_best_and_ignores_unfinished_saves(tmp_path):
    ckpt = checkpoint.Checkpointer(tmp_path / "ckpt", keep=2)
    tree = {"w": np.arange(4, dtype=np.float32), "rng": np.array([1, 2], np.uint32)}
    evals = {20: 0.5, 40: 0.9, 60: 0.3, 80: None, 100: None, 120: None}
    for step, success in evals.items():
        ckpt.save(step, {"w": tree["w"] + step, "rng": tree["rng"]}, {"chunk": step // 20}, success_mean=success)
    assert ckpt.steps() == [40, 100, 120] and ckpt.best_step() == 40
    ckpt.save(140, tree, {"chunk": 7}, success_mean=0.9)  # a tie goes to the later checkpoint
    assert ckpt.steps() == [120, 140] and ckpt.best_step() == 140
    ckpt.close()
    # A save killed mid-write stays in orbax's temporary directory: never listed, never restored.
    unfinished = tmp_path / "ckpt" / "160.orbax-checkpoint-tmp-1234567"
    (unfinished / "state").mkdir(parents=True)
    reader = checkpoint.Checkpointer(tmp_path / "ckpt", keep=2)
    assert reader.latest_step() == 140
    state, meta = reader.restore(tree)
    assert meta["chunk"] == 7 and np.array_equal(state["w"], tree["w"]) and state["rng"].dtype == np.uint32
    reader.close()


def test_overwrite_removes_only_the_run_files(tmp_path):
    config = cfg.replace(cfg.Config(), train={"out": str(tmp_path), "overwrite": True})
    for name in ("config.json", "metrics.jsonl", "notes.txt"):
        (tmp_path / name).write_text("{}")
    for name in ("checkpoints/5", "plots", "mine"):
        (tmp_path / name).mkdir(parents=True)
    assert rundir.prepare_run_dir(tmp_path, config, ["reach"]) is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "notes.txt"]


def test_host_fields_may_change_on_resume_but_run_fields_may_not(tmp_path):
    config = cfg.replace(cfg.Config(), train={"out": str(tmp_path)})
    (tmp_path / "config.json").write_text(json.dumps({"config": cfg.to_dict(config), "tasks": ["reach", "push"]}))
    longer = cfg.replace(config, train={"total_env_steps": 10**9, "wandb": False, "checkpoint_every": 5})
    assert rundir.prepare_run_dir(tmp_path, longer, ["reach", "push"]) is True
    with pytest.raises(checkpoint.CheckpointMismatchError, match=r"ppo.learning_rate 0.0003 -> 0.001"):
        rundir.prepare_run_dir(tmp_path, cfg.replace(config, ppo={"learning_rate": 1e-3}), ["reach", "push"])


# --------------------------------------------------------------------------------------- wandb


class _BrokenRun:
    def __init__(self):
        self.summary = {}

    def log(self, *args, **kwargs):
        raise ConnectionError("wandb is down")

    def finish(self):
        raise ConnectionError("wandb is down")


def _fake_wandb(init):
    module = types.ModuleType("wandb")
    module.init = init
    module.Settings = lambda **kwargs: kwargs
    return module


def test_broken_wandb_does_not_stop_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", _fake_wandb(lambda **kwargs: _BrokenRun()))
    assert train_main(argv(tmp_path / "run", total=2 * CHUNK)) == 0
    assert [line["env_steps"] for line in read_lines(tmp_path / "run")] == [CHUNK, 2 * CHUNK]
    err = capsys.readouterr().err
    assert err.count("training continues without wandb") == 1 and "wandb is down" in err


def test_wandb_init_failure_is_reported_once_and_turns_wandb_off(tmp_path, monkeypatch):
    def cannot_start(**kwargs):
        raise RuntimeError("cannot start wandb")

    monkeypatch.setitem(sys.modules, "wandb", _fake_wandb(cannot_start))
    warnings = []
    run = logger.Wandb(True, project="p", run_id="abc", run_dir=tmp_path, name="n", config={}, warn=warnings.append)
    run.log({"x": 1.0}, step=1)
    run.summary({"y": 2.0})
    run.finish()
    assert not run.active and run.failed and len(warnings) == 1 and "cannot start wandb" in warnings[0]
    off = logger.Wandb(False, project="p", run_id="abc", run_dir=tmp_path, name="n", config={}, warn=warnings.append)
    assert not off.active and not off.failed and len(warnings) == 1


# --------------------------------------------------------------------------------------- plots


def test_plots_of_a_run_and_of_a_comparison(runs, tmp_path):
    assert plots.main(["--run", str(runs["full"])]) == 0
    names = sorted(p.name for p in (runs["full"] / "plots").glob("*.png"))
    assert names == ["diagnostics.png", "popart_sigma.png", "success.png", "success_per_task.png"]
    for name in names:
        image = imageio.imread(runs["full"] / "plots" / name)
        assert image.shape[0] > 200 and image.shape[1] > 400 and image.std() > 10  # drawn, not blank
    out = tmp_path / "cmp.png"
    assert plots.main(["--runs", str(runs["full"]), str(runs["part"]), "--out", str(out), "--labels", "a", "a"]) == 0
    assert imageio.imread(out).shape[1] > 800
    assert plots.main(["--runs", str(runs["full"])]) == 2  # no --out
    # D1/D2 per group: the medians written beside the figure are those of the logged values.
    d1d2 = tmp_path / "d1d2.png"
    assert plots.main(["--runs", str(runs["full"]), str(runs["part"]), "--out", str(d1d2), "--labels", "f", "p", "--diagnostics"]) == 0
    medians = json.loads(d1d2.with_suffix(".json").read_text())
    full_d1 = [line["train/d1"] for line in logger.read_metrics(runs["full"] / "metrics.jsonl")]
    assert medians["f"]["train/d1"] == pytest.approx(float(np.median(full_d1)), rel=1e-6)
    assert set(medians["p"]) == {"train/d1", "train/d2", "train/d1_shared", "train/d2_shared", "train/actor_d1", "train/actor_d2"}
    assert imageio.imread(d1d2).std() > 10
    assert plots.main(["--run", str(tmp_path / "nothing")]) == 2


def test_series_averages_seeds_and_iqm_by_hand():
    lines = [{"seed": s, "env_steps": e, "x": float(s + e)} for e in (10, 20) for s in (0, 1)]
    steps, mean, std = plots.series(lines, "x")
    np.testing.assert_array_equal(steps, [10, 20])
    np.testing.assert_allclose(mean, [10.5, 20.5])
    np.testing.assert_allclose(std, [0.5, 0.5])
    assert plots.iqm([0, 1, 2, 3, 4, 5, 6, 7]) == pytest.approx(3.5)  # mean of 2..5
    assert plots.iqm([0.0, 0.0, 1.0, 1.0, 1.0]) == pytest.approx(2 / 3)  # drops one at each end


# ------------------------------------------------------------------------------ evaluate --run


def test_load_policy_returns_the_checkpoints_actor_and_normaliser(runs):
    state, _ = restore_final(runs["full"])
    policy = rundir.load_policy(runs["full"])
    assert policy.tasks == TASKS and policy.step == 5 * CHUNK and policy.num_seeds == 1
    for x, y in zip(leaves(policy.actor_params), leaves(state["actor_params"])):
        assert x.tobytes() == y.tobytes()
    np.testing.assert_array_equal(policy.obs_stats.mean, state["obs_stats"]["mean"])
    assert float(policy.obs_stats.count) == 5 * CHUNK


def test_evaluate_cli_on_the_port_matches_the_training_evaluation(runs, tmp_path, capsys):
    out = tmp_path / "eval.json"
    code = evaluate.main(["--run", str(runs["full"]), "--episodes", "5", "--stochastic", "--json", str(out)],
                         make_env=fake.fake_factory(episode_length=15))
    assert code == 0
    result = json.loads(out.read_text())
    last = read_lines(runs["full"])[-1]
    assert result["checkpoint_step"] == 5 * CHUNK and result["episodes"] == 5
    assert {t: row["port"] for t, row in result["tasks"].items()} == {t: last[f"eval/success/{t}"] for t in TASKS}
    assert result["eval/success_mean"] == pytest.approx(last["eval/success_mean"])
    # --eval-stochastic during training and --stochastic here: the same sampled rollouts.
    sampled = {t: row["port_stochastic"] for t, row in result["tasks"].items()}
    assert sampled == {t: last[f"eval_stochastic/success/{t}"] for t in TASKS}
    assert result["stochastic"]["eval_stochastic/success_mean"] == pytest.approx(last["eval_stochastic/success_mean"])
    assert "sampled" in capsys.readouterr().out
    capsys.readouterr()
    assert evaluate.main(["--run", str(runs["full"]), "--episodes", "0"]) == 2
    assert evaluate.main(["--run", str(tmp_path / "missing")]) == 2
    assert evaluate.main(["--run", str(runs["full"]), "--reference", "--workers", "0"]) == 2
    assert evaluate.main(["--run", str(runs["full"]), "--impl", "cuda"]) == 2  # named by envs.backends, like train
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and "--episodes 0" in err[0] and "config.json" in err[1] and "--workers 0" in err[2]
    assert "--impl 'cuda'" in err[3] and "valid: auto, mujoco, warp, jax" in err[3]


@pytest.mark.slow
def test_resume_on_the_mujoco_port_is_bit_exact(tmp_path):
    """The same check on the real env (reach, push): the physics state in the checkpoint is the
    float64 MuJoCo state, so a resumed run steps the same physics. Stopped at 2 of 4 chunks."""
    args = [
        "--tasks", "reach,push", "--envs-per-task", "2", "--rollout-length", "20", "--num-epochs", "2",
        "--num-minibatches", "2", "--actor-hidden", "32", "32", "--critic-hidden", "32", "32", "--eval-episodes", "3",
        "--eval-every", "160", "--checkpoint-every", "80", "--worst-k", "1", "--no-videos", "--no-wandb",
    ]  # fmt: skip
    full, part = tmp_path / "full", tmp_path / "part"
    assert train.main([*args, "--total-env-steps", "320", "--out", str(full)]) == 0
    assert train.main([*args, "--total-env-steps", "160", "--out", str(part)]) == 0
    assert train.main([*args, "--total-env-steps", "320", "--out", str(part)]) == 0
    assert [results_only(line) for line in read_lines(part)] == [results_only(line) for line in read_lines(full)]
    (a, _), (b, _) = restore_final(full), restore_final(part)
    assert int(a["env_steps"]) == 320
    assert all(x.tobytes() == y.tobytes() for x, y in zip(leaves(a), leaves(b)))


def test_reward_version_reaches_every_env_and_the_saved_config(tmp_path):
    calls = []

    def recording_env(tasks, envs_per_task, **kwargs):
        calls.append(kwargs["reward_version"])
        return fake.make_fake_multitask(tasks, envs_per_task, episode_length=15, **{**kwargs, "reward_version": "v2"})

    out = tmp_path / "v1"
    assert train.main(argv(out, "--no-eval-stochastic", total=CHUNK, envs_per_task=2) + ["--reward-version", "v1"],
                      make_env=recording_env, task_catalog=(fake.GROUPS, fake.TASKS), compiler_options=fake.FAST_COMPILE) == 0
    assert calls == ["v1", "v1"]  # the training env and the evaluation env
    assert json.loads((out / "config.json").read_text())["config"]["env"]["reward_version"] == "v1"
    # A run without the field (saved before V1 existed) ran V2.
    assert cfg.from_dict({"env": {"tasks": "mt10"}}).env.reward_version == "v2"
