"""Config validation, task resolution, presets and the CLI's one-line errors (exit code 2)."""

import json
import os
import subprocess
import sys

import conftest_fake_env  # noqa: F401  (repository root on sys.path)
import pytest

from toppo_jax import presets
from toppo_jax import config as cfg
from toppo_jax import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_defaults_and_every_preset_validate_on_mt10_and_mt50():
    cfg.validate(cfg.Config(), 10)
    for name, config in ((n, presets.get_preset(n)) for n in presets.names()):
        cfg.validate(config, 50)
        cfg.validate(config, 10)


@pytest.mark.parametrize(
    "sections, flag, mentions",
    [
        ({"toppo": {"actor_combiner": "pcgard"}}, "--actor-combiner 'pcgard'", "mean, pcgrad, cagrad, fairgrad"),
        ({"toppo": {"critic_combiner": "nash"}}, "--critic-combiner 'nash'", "fairgrad"),
        ({"env": {"impl": "mjx"}}, "--impl 'mjx'", "mujoco, warp, jax"),
        ({"network": {"critic_heads": "both"}}, "--critic-heads 'both'", "scalar, per_task"),
        ({"network": {"activation": "sigmoid"}}, "--activation 'sigmoid'", "relu"),
        ({"network": {"log_std_clip": "tanh"}}, "--log-std-clip 'tanh'", "hard, soft"),
        ({"network": {"policy_std": "fixed"}}, "--policy-std 'fixed'", "state, param"),
        ({"network": {"log_std_min": 1.0, "log_std_max": 0.0}}, "--log-std-min 1.0", "below the maximum"),
        ({"ppo": {"learning_rate": 0.0}}, "--learning-rate 0.0", "> 0"),
        ({"env": {"reward_version": "v3"}}, "--reward-version 'v3'", "v2, v1"),
        ({"env": {"max_contacts": -1, "impl": "jax"}}, "--max-contacts -1", ">= 0"),
        ({"env": {"max_contacts": 32}}, "--max-contacts 32", "needs --impl jax, not --impl mujoco"),
        ({"ppo": {"advantage_norm": "batch"}}, "--advantage-norm 'batch'", "iteration, minibatch"),
        ({"ppo": {"num_epochs": -1}}, "--num-epochs -1", "> 0"),
        ({"ppo": {"gamma": 1.5}}, "--gamma 1.5", "[0, 1]"),
        ({"toppo": {"popart_beta": 1.0}}, "--popart-beta 1.0", "(0, 1)"),
        ({"toppo": {"fairgrad_alpha": 0.0}}, "--fairgrad-alpha 0.0", "> 0"),
        ({"train": {"total_env_steps": -1}}, "--total-env-steps -1", ">= 0"),
        ({"train": {"worst_k": (1, 0)}}, "--worst-k 1 0", "positive"),
        ({"network": {"critic_hidden": ()}}, "--critic-hidden (empty)", "positive widths"),
        ({"ppo": {"num_minibatches": 7}}, "--num-minibatches 7", "divisor of 8000"),
        (
            {"ppo": {"rollout_length": 2, "num_minibatches": 8}, "env": {"envs_per_task": 2}},
            "--num-minibatches 8",
            "smaller than the 10 tasks",
        ),
    ],
)
def test_validation_names_the_bad_value_and_the_choices_in_one_line(sections, flag, mentions):
    with pytest.raises(cfg.ConfigError) as err:
        cfg.validate(cfg.replace(cfg.Config(), **sections), 10)
    message = str(err.value)
    assert flag in message and mentions in message
    assert "\n" not in message


def test_resolve_tasks():
    groups = {"mt2": ("reach", "push")}
    names = ("reach", "push", "pick-place")
    catalog = (groups, names)  # the one resolver (envs.registry) with another catalog, as the trainer's tests use it
    assert train.resolve_tasks("mt2", catalog) == ("reach", "push")
    assert train.resolve_tasks("MT2", catalog) == ("reach", "push")
    assert train.resolve_tasks("pick-place-v3", catalog) == ("pick-place",)
    assert train.resolve_tasks("push, pick-place", catalog) == ("push", "pick-place")
    with pytest.raises(cfg.ConfigError, match="'pick-plcae'.*did you mean 'pick-place'"):
        train.resolve_tasks("reach,pick-plcae", catalog)
    with pytest.raises(cfg.ConfigError, match="listed twice"):
        train.resolve_tasks("reach,reach-v3", catalog)


def test_config_dict_round_trip():
    config = presets.get_preset("toppo_actor-fairgrad_critic-pcgrad")
    assert cfg.from_dict(json.loads(json.dumps(cfg.to_dict(config)))) == config


def test_presets_encode_the_ablation_ladder():
    p = {name: presets.get_preset(name) for name in presets.names()}
    rows = {  # (PopArt, LN-c, actor combiner, critic combiner)
        "mtppo": (False, False, "mean", "mean"),
        "popart": (True, False, "mean", "mean"),
        "ln_critic": (False, True, "mean", "mean"),
        "popart_ln": (True, True, "mean", "mean"),
        "toppo_no_popart": (False, True, "pcgrad", "cagrad"),
        "toppo_no_ln": (True, False, "pcgrad", "cagrad"),
        "toppo": (True, True, "pcgrad", "cagrad"),
        "toppo_actor-fairgrad_critic-mean": (True, True, "fairgrad", "mean"),
    }
    for name, row in rows.items():
        for variant in (name, f"{name}-mt10", f"{name}-mt50"):
            t = p[variant].toppo
            assert (t.popart, t.critic_layer_norm, t.actor_combiner, t.critic_combiner) == row, variant
    assert sum(name.startswith("toppo_actor-") and "-mt" not in name for name in p) == 16
    assert p["mt50"].env.tasks == "mt50" and p["mt50"].toppo.cagrad_c == 0.5 and p["mt10"].toppo.cagrad_c == 0.9
    assert p["mtppo-mt50"].env.tasks == "mt50" and p["mtppo-mt50"].toppo.cagrad_c == 0.5 and p["mtppo-mt50"].train.eval_every == 5_000_000
    assert p["toppo"] == cfg.replace(p["mt10"], toppo={}) and p["toppo"].toppo == cfg.Config().toppo.__class__(cagrad_c=0.9)
    assert presets.get_preset("mtppo", "mt50") == p["mtppo-mt50"]
    # The budget: 2M env steps per task unless --total-env-steps is given.
    assert cfg.total_env_steps(p["mt50"], 50) == 100_000_000 and cfg.total_env_steps(p["mt10"], 10) == 20_000_000
    assert cfg.total_env_steps(cfg.Config(), 1) == 2_000_000
    assert cfg.total_env_steps(cfg.replace(cfg.Config(), train={"total_env_steps": 5}), 50) == 5
    assert "mtppo" in presets.table() and presets.table().count("\n") == 2 + len(presets.BENCHMARKS) + len(presets.METHODS)


def test_tasks_pick_the_benchmark_settings_without_a_preset():
    mt50 = train.parse_args(["--tasks", "mt50"])
    assert mt50 == presets.get_preset("mt50")
    assert train.parse_args(["--tasks=MT50"]).toppo.cagrad_c == 0.5
    assert train.parse_args([]) == presets.get_preset("mt10")
    two = train.parse_args(["--tasks", "reach,push"])
    assert two.env.tasks == "reach,push" and two.train.total_env_steps == 0 and two.toppo == cfg.Config().toppo


def test_unknown_preset_suggests_the_closest():
    with pytest.raises(cfg.ConfigError, match="'popart-ln' is unknown \\(did you mean popart_ln"):
        presets.get_preset("popart-ln")


def test_parse_args_preset_then_flag_overrides():
    config = train.parse_args(["--preset", "mtppo", "--tasks", "mt50", "--seed", "4", "--actor-hidden", "64", "64"])
    assert config.toppo.popart is False and config.env.tasks == "mt50"
    assert config.train.seed == 4 and config.network.actor_hidden == (64, 64)
    assert train.parse_args(["--no-popart"]).toppo.popart is False


@pytest.mark.parametrize(
    "argv, mentions",
    [
        (["--actor-combiner", "pcgard"], "did you mean pcgrad"),
        (["--preset", "mt5O"], "did you mean mt50"),
        (["--seedx", "3"], "--seedx"),
        (["--seed", "abc"], "--seed"),
        (["--tasks", "fake-rech-0"], "did you mean 'fake-reach-0'"),
        (["--num-minibatches", "3"], "--num-minibatches 3"),
        (["--num-minibatches", "100000"], "smaller than the 4 tasks"),
        (["--envs-per-task", "0"], "--envs-per-task 0 is not valid; it must be > 0"),
        (["--learning-rate", "-1e-3"], "--learning-rate -0.001 is not valid"),
        (["--total-env-steps", "-5"], "--total-env-steps -5"),
        (["--nan-rollbacks", "-1"], "--nan-rollbacks -1"),
        (["--critic-combiner", "fairgard"], "did you mean fairgrad"),
        (["--impl", "cuda"], "choose one of: mujoco, warp, jax, auto"),
        (["--impl", "jax"], "has no collision diet yet"),  # a task without its MJX collision diet
        (["--devices", "-1"], "--devices -1"),
        (["--distributed", "always"], "--distributed 'always' is not a mode; valid: auto, on, off"),
    ],
)
def test_main_bad_input_exits_2_with_one_line(argv, mentions, capsys):
    if "--tasks" not in argv:
        argv = argv + ["--tasks", "fake4"]
    code = train.main(argv, task_catalog=(conftest_fake_env.GROUPS, conftest_fake_env.TASKS))
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and mentions in err


def test_cli_resolves_tasks_through_the_port_registry():
    assert train.resolve_tasks("reach-v3") == ("reach",)
    assert train.resolve_tasks("mt10")[:3] == ("reach", "push", "pick-place")
    with pytest.raises(cfg.ConfigError, match="--tasks 'rech'.*reach"):
        train.resolve_tasks("rech")


def test_cli_process_exit_code_2_without_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "toppo_jax.train", "--tasks", "mt10", "--critic-combiner", "cagard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "--critic-combiner 'cagard'" in proc.stderr and "mean, pcgrad, cagrad, fairgrad" in proc.stderr


def test_a_saved_config_without_a_field_whose_default_changed_keeps_its_old_value(tmp_path):
    from toppo_jax import checkpoint, rundir

    old = cfg.to_dict(cfg.Config())
    del old["network"]["log_std_max"]  # saved before the field existed: the clip was at 2
    assert cfg.from_dict(old).network.log_std_max == 2.0
    saved = rundir.config_fingerprint(old, ["reach"])
    assert saved["network.log_std_max"] == 2.0
    assert rundir.config_fingerprint(cfg.to_dict(cfg.Config()), ["reach"])["network.log_std_max"] == cfg.Config().network.log_std_max
    (tmp_path / "config.json").write_text(json.dumps({"config": old, "tasks": ["reach"]}))
    with pytest.raises(checkpoint.CheckpointMismatchError, match="network.log_std_max 2.0 -> 0.0"):
        rundir.prepare_run_dir(tmp_path, cfg.Config(), ["reach"])
    resumed = cfg.replace(cfg.Config(), network={"log_std_max": 2.0})
    assert rundir.prepare_run_dir(tmp_path, resumed, ["reach"])  # the old value resumes it


def test_a_run_of_the_art_only_popart_refuses_to_resume_naming_the_field(tmp_path):
    from toppo_jax import checkpoint, rundir

    old = cfg.to_dict(cfg.Config())
    del old["toppo"]["popart_version"]  # saved before 2026-12-03: ART-only affine, per-minibatch statistics
    assert cfg.from_dict(old).toppo.popart_version == 1
    (tmp_path / "config.json").write_text(json.dumps({"config": old, "tasks": ["reach"]}))
    with pytest.raises(checkpoint.CheckpointMismatchError, match="toppo.popart_version 1 -> 2"):
        rundir.prepare_run_dir(tmp_path, cfg.Config(), ["reach"])
    # Asking for the old version by flag is refused with the reason, before anything runs.
    with pytest.raises(cfg.ConfigError, match="--popart-version 1 is not valid; only 2"):
        cfg.validate(cfg.replace(cfg.Config(), toppo={"popart_version": 1}))


def test_backend_names_have_one_source():
    import envs.backends

    assert set(cfg.IMPLS) == set(envs.backends.IMPL_CHOICES)  # the trainer's --impl choices are the port's
    from envs.tasks.base import REWARD_VERSIONS

    assert cfg.REWARD_VERSIONS == REWARD_VERSIONS  # --reward-version's choices are the port's


def test_max_contacts_reaches_the_jax_backend_only_when_set():
    assert cfg.physics_kwargs(cfg.Config().env) == {}
    capped = cfg.replace(cfg.Config(), env={"impl": "jax", "max_contacts": 32})
    cfg.validate(capped, 10)
    assert cfg.physics_kwargs(capped.env) == {"max_contact_points": 32}
