"""Expert parity and state replay against official Meta-World (docs/port.md, "Expert parity" and "State replay").

    python -m envs.parity --tasks mt10 --episodes 20 --seed 0 [--impl mujoco] --json parity.json

Runs the official scripted experts (``metaworld.policies``) on official Meta-World and on the port,
on the same goals (N distinct goals drawn from each task's 50-goal table with seed S), one episode
per goal; success = success at any step. Actions are cast to float32 on both sides (the port's
action dtype), so both sides see identical actions.

``official_trajectory`` / ``replay_errors`` are the state-replay oracle used by the tests: the
official state at every step of an expert episode is copied into the port, one step is taken with
the same action, and the port's obs, reward and success are compared with the official ones.
``--reward-version v1`` builds both sides with the V1 reward (official: ``reward_function_version="v1"``);
``reward_v1_errors`` checks a task's V1 reward function alone on official states (the fast test).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from envs import assets
from envs.backends import DEFAULT_IMPL, EXACT_IMPL, IMPL_CHOICES, BackendUnavailableError, check_impl
from envs.control import MAX_PATH_LENGTH, NUM_GOALS
from envs.types import OBS_FRAME, OBS_HAND, OBS_OBJ1_POS
from envs.registry import UnknownTaskError, benchmark_for, resolve_tasks
from envs.tasks.base import DEFAULT_REWARD_VERSION, REWARD_VERSIONS, check_reward_version, common_constants

EPISODE_LENGTH = MAX_PATH_LENGTH


class _Expert:
    """An official scripted policy fed a copy of the obs: some (door-*, button-press) edit it in place."""

    def __init__(self, policy):
        self.policy = policy

    def get_action(self, obs):
        return self.policy.get_action(np.array(obs, dtype=np.float64, copy=True))


def expert(task: str) -> _Expert:
    from metaworld.policies import ENV_POLICY_MAP

    return _Expert(ENV_POLICY_MAP[f"{task}-v3"]())


def goal_indices(episodes: int, seed: int) -> np.ndarray:
    """``episodes`` goal indices: a seeded permutation of the 50 goals, distinct while episodes <= 50."""
    perm = np.random.default_rng(seed).permutation(NUM_GOALS)
    return np.resize(perm, episodes)


def official_trajectory(task: str, rand_vec: np.ndarray, tm: assets.TaskModel, steps: int = EPISODE_LENGTH,
                        reward_version: str = DEFAULT_REWARD_VERSION):
    """Run the official expert on the official env (built with ``reward_version``); record port-layout
    states, actions, obs, rewards, success.

    ``*_cold`` entries are the official results of the same step taken from the same state with the
    solver's warm start cleared, which is how the ``mujoco`` backend starts every control step.
    """
    import mujoco

    env = assets.official_env(task, reward_version)
    env.set_task(assets.make_task_data(task, rand_vec))
    policy = expert(task)
    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    saved = np.zeros(mujoco.mj_stateSize(env.model, spec))
    keys = ("state", "obs", "action", "reward", "success", "obs_cold", "reward_cold", "success_cold")
    rec = {k: [] for k in keys}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obs, _ = env.reset()
        rec["state"].append(assets.official_state_to_port(tm, env))
        rec["obs"].append(obs)
        for _ in range(steps):
            a = np.clip(policy.get_action(obs), -1, 1).astype(np.float32)
            mujoco.mj_getState(env.model, env.data, saved, spec)
            prev, length = env._prev_obs.copy(), env.curr_path_length
            env.data.qacc_warmstart[:] = 0
            cold = env.step(a)
            mujoco.mj_setState(env.model, env.data, saved, spec)
            env._prev_obs, env.curr_path_length = prev, length
            obs, r, _, trunc, info = env.step(a)
            for k, v in (("state", assets.official_state_to_port(tm, env)), ("obs", obs), ("action", a), ("reward", r),
                         ("success", info["success"]), ("obs_cold", cold[0]), ("reward_cold", cold[1]),
                         ("success_cold", cold[4]["success"])):
                rec[k].append(v)
            if trunc:
                break
    return {k: np.asarray(v) for k, v in rec.items()}


def replay_errors(env, goal: int, traj: dict, steps: np.ndarray | None = None, step=None) -> dict[str, np.ndarray]:
    """Copy each official state into the port, step with the official action; per-step |port - official|.

    ``steps`` picks which steps of the trajectory to replay (default: all of them), one env each;
    ``step`` is a jitted ``env.step`` to reuse across calls of one batch size (one trace per task).
    """
    steps = np.arange(len(traj["action"])) if steps is None else np.asarray(steps)
    n = len(steps)
    qpos = env.task_model.state_slices()["qpos"]
    state = env.reset(jax.random.PRNGKey(0), n, goals=jnp.full((n,), goal))
    data = env.backend.set_physics(state.data, traj["state"][steps])
    info = {**state.info, "prev": jnp.asarray(traj["obs"][steps, OBS_FRAME], jnp.float32)}
    out = (step or jax.jit(env.step))(state.replace(data=data, info=info), jnp.asarray(traj["action"][steps]))
    obs = np.asarray(out.info["final_obs"])
    qpos_port = env.physics_state(out)[:, qpos]
    return {
        # the port against official stepped the way the port steps (cold solver start): exactness
        "obs": np.abs(obs - traj["obs_cold"][steps]).max(axis=-1),
        "reward": np.abs(np.asarray(out.reward) - traj["reward_cold"][steps]),
        "reward_rel": relative_error(np.asarray(out.reward), traj["reward_cold"][steps]),
        "success": np.abs(np.asarray(out.info["step_info"]["success"]) - traj["success_cold"][steps]),
        # the port against the official trajectory itself (includes the warm-start difference)
        "obs_warm": np.abs(obs - traj["obs"][steps + 1]).max(axis=-1),
        "reward_warm": np.abs(np.asarray(out.reward) - traj["reward"][steps]),
        "qpos_warm": np.abs(qpos_port - traj["state"][steps + 1, qpos]).max(axis=-1),
    }


def relative_error(port: np.ndarray, official: np.ndarray) -> np.ndarray:
    """|port - official| / max(|official|, 1): relative where |reward| > 1, absolute below (V1 rewards
    run from about -1 to several thousand, so a plain relative error would blow up near 0)."""
    official = np.asarray(official, np.float64)
    return np.abs(np.asarray(port, np.float64) - official) / np.maximum(np.abs(official), 1.0)


def official_kinematics(env, frames: tuple[str, ...]):
    """The port's ``Kinematics`` (float32 numpy) read from an official env's current MjData."""
    import mujoco

    from envs.types import Frame, Kinematics

    out = {}
    for key in frames:
        kind, name = key.split(":", 1)
        obj = getattr(env.data, kind)(name)
        mat = np.array(obj.xmat, np.float64).reshape(3, 3)
        if kind == "body":
            quat = np.array(obj.xquat, np.float64)
        else:
            quat = np.zeros(4)
            mujoco.mju_mat2Quat(quat, mat.ravel())
        out[key] = Frame(pos=np.float32(obj.xpos), quat=np.float32(quat), mat=np.float32(mat))
    return Kinematics(frames=out, qpos=np.float32(env.data.qpos), qvel=np.float32(env.data.qvel))


def reward_v1_errors(task: str, rand_vecs: np.ndarray, steps: int = EPISODE_LENGTH) -> dict[str, np.ndarray]:
    """The port's V1 reward function on official states: the official expert runs on the official env
    built with ``reward_function_version="v1"``, one episode per rand_vec (``steps`` steps each); at
    every step the port's ``reward_v1`` is evaluated on the official obs, kinematics and constants.

    No port physics is involved, so this isolates the reward (and its constants) from stepping; it
    is the fast test. Returns per-step official and port rewards and their ``relative_error``.

    Experts reach some objects with an offset (button-press's V1 measures from the left finger) and
    never enter the near-object branches there, so each step is also scored with the object block
    moved (``*_moved``): obs[OBS_OBJ1_POS] put within 2 cm per axis of the TCP or of the left finger
    (alternating), scored by the official ``compute_reward`` on the same state and by the port."""
    from envs.tasks import PORTED
    from envs.tasks.base import SAWYER_FRAMES

    t = PORTED[task]
    frames = SAWYER_FRAMES + tuple(dict.fromkeys(f for f in t.frames + t.frames_v1 if f not in SAWYER_FRAMES))
    env = assets.official_env(task, "v1")
    policy = expert(task)
    rec = {"obs": [], "action": [], "kin": [], "consts": [], "official": [], "obs_moved": [], "official_moved": []}
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for rv in rand_vecs:
            env.set_task(assets.make_task_data(task, rv))
            obs, _ = env.reset()
            consts = {**common_constants(env), **t.constants(env), **t.constants_v1(env)}
            consts = {k: np.float32(v) for k, v in consts.items()}
            for _ in range(steps):
                a = np.clip(policy.get_action(obs), -1, 1).astype(np.float32)
                obs, r, _, trunc, _ = env.step(a)
                site = "rightEndEffector" if len(rec["obs"]) % 2 else "leftEndEffector"
                anchor = (env._get_site_pos(site) + env._get_site_pos("leftEndEffector")) / 2
                moved = np.array(obs, copy=True)
                moved[OBS_OBJ1_POS] = anchor + rng.uniform(-0.02, 0.02, 3)
                r_moved = env.compute_reward(a, moved)[0]
                for k, v in (("obs", np.float32(obs)), ("action", a), ("kin", official_kinematics(env, frames)),
                             ("consts", consts), ("official", r), ("obs_moved", np.float32(moved)),
                             ("official_moved", r_moved)):
                    rec[k].append(v)
                if trunc:
                    break
    stack = {k: jax.tree.map(lambda *xs: np.stack(xs), *rec[k]) for k in ("obs", "obs_moved", "action", "kin", "consts")}
    reward = jax.jit(jax.vmap(t.reward_v1))
    out = {}
    for tag, obs_key in (("", "obs"), ("_moved", "obs_moved")):
        port = np.asarray(reward(stack[obs_key], stack["action"], stack["kin"], stack["consts"]))
        official = np.asarray(rec[f"official{tag}"], np.float64)
        out.update({f"official{tag}": official, f"port{tag}": port, f"rel{tag}": relative_error(port, official)})
    return out


def official_success(task: str, goals: np.ndarray, env=None) -> np.ndarray:
    """Any-step success of the official expert on the official env (or ``env``, e.g. one with edited
    shapes), one episode per rand_vec."""
    env = assets.official_env(task) if env is None else env
    policy = expert(task)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for rv in goals:
            env.set_task(assets.make_task_data(task, rv))
            obs, _ = env.reset()
            success = 0.0
            for _ in range(EPISODE_LENGTH):
                obs, _, _, trunc, info = env.step(np.clip(policy.get_action(obs), -1, 1).astype(np.float32))
                success = max(success, float(info["success"]))
                if trunc:
                    break
            out.append(success)
    return np.asarray(out)


def port_success(env, goals: np.ndarray) -> np.ndarray:
    """Any-step success of the official expert on the port, all episodes batched in one env."""
    return expert_rollout(env, goals)["success"]


def expert_rollout(env, goals: np.ndarray, replay_actions: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The official expert on the port, one episode per goal, batched; any-step success and the obs.

    With ``replay_actions`` [steps, n, 4] the batch also carries n more envs on the same goals that
    replay those actions open loop (same physics start, same actions: backend agreement); their
    observations come back as ``replay_obs`` [steps, n, 39].
    """
    policy = expert(env.name)
    n = len(goals)
    m = 0 if replay_actions is None else replay_actions.shape[1]
    all_goals = np.concatenate([goals, goals[:m]])
    state = env.reset(jax.random.PRNGKey(0), n + m, goals=jnp.asarray(all_goals))
    step = jax.jit(env.step)
    success = np.zeros(n)
    actions, replay_obs = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for t in range(EPISODE_LENGTH):
            obs = np.asarray(state.obs, np.float64)
            action = np.stack([np.clip(policy.get_action(o), -1, 1) for o in obs[:n]]).astype(np.float32)
            actions.append(action)
            if m:
                action = np.concatenate([action, replay_actions[t]])
            state = step(state, jnp.asarray(action))
            success = np.maximum(success, np.asarray(state.info["step_info"]["success"])[:n])
            replay_obs.append(np.asarray(state.info["final_obs"])[n:])
    return {"success": success, "actions": np.asarray(actions), "replay_obs": np.asarray(replay_obs)}


AGREEMENT_STEPS = (50, 200, 500)


def backend_agreement(env, reference, goals: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    """Expert success on ``env``, and how far ``env`` drifts from ``reference`` (the exact ``mujoco``
    backend) under the same actions: max |object position| and |hand position| error over the
    episodes at steps 50/200/500 (the reference's expert actions replayed open loop on ``env``)."""
    ref = expert_rollout(reference, goals)
    ref_obs = _observed(reference, goals, ref["actions"])
    out = expert_rollout(env, goals, replay_actions=ref["actions"])
    errors = {}
    for t in AGREEMENT_STEPS:
        d = np.abs(out["replay_obs"][t - 1] - ref_obs[t - 1])
        errors[f"obj_err_{t}"] = float(d[:, OBS_OBJ1_POS].max())
        errors[f"hand_err_{t}"] = float(d[:, OBS_HAND].max())
    errors["reference_success"] = float(ref["success"].mean())
    return out["success"], errors


def _observed(env, goals: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Observations [steps, n, 39] of ``env`` under the given actions [steps, n, 4] from reset."""
    state = env.reset(jax.random.PRNGKey(0), len(goals), goals=jnp.asarray(goals))

    def body(state, a):
        state = env.step(state, a)
        return state, state.info["final_obs"]

    return np.asarray(jax.jit(lambda s, a: jax.lax.scan(body, s, a)[1])(state, jnp.asarray(actions)))


def run(tasks, episodes: int, seed: int, impl: str = DEFAULT_IMPL, log=print,
        reward_version: str = DEFAULT_REWARD_VERSION) -> dict:
    """Expert parity per task; on an MJX backend also the agreement with the exact ``mujoco`` backend.

    ``reward_version`` builds the port env with that reward; success is V2's in both versions, so the
    official reference is always the V2 env's success."""
    from envs.sawyer import SawyerEnv

    impl = check_impl(impl)
    names = resolve_tasks(tasks)
    bench = benchmark_for(names)
    table = assets.goal_table(bench, seed)
    idx = goal_indices(episodes, seed)
    mjx = impl != EXACT_IMPL
    result = {"tasks": {}, "impl": impl, "episodes": episodes, "seed": seed, "benchmark": bench,
              "reward_version": check_reward_version(reward_version)}
    extra = "".join(f" {f'obj@{t}':>9s}" for t in AGREEMENT_STEPS) if mjx else ""
    log(f"{'task':28s} {'official':>9s} {'port':>7s} {'gap':>7s}{extra}  time")
    for name in names:
        t0 = time.perf_counter()
        env = SawyerEnv(name, seed=seed, benchmark=bench, impl=impl, eval_mode=True, reward_version=reward_version)
        off = official_success(name, table[name][idx])
        row = {"official": float(off.mean()), "episodes": episodes}
        if mjx:
            reference = SawyerEnv(name, seed=seed, benchmark=bench, impl=EXACT_IMPL, eval_mode=True)
            port, agreement = backend_agreement(env, reference, idx)
            row.update(agreement, edits=list(getattr(env.backend, "edits", ())))
        else:
            port = port_success(env, idx)
        row["port"] = float(port.mean())
        result["tasks"][name] = row
        errs = "".join(f" {row[f'obj_err_{t}']:9.1e}" for t in AGREEMENT_STEPS) if mjx else ""
        log(f"{name:28s} {row['official']:9.2f} {row['port']:7.2f} {row['port'] - row['official']:+7.2f}{errs}"
            f"  {time.perf_counter() - t0:.0f}s")
    result["mean_official"] = float(np.mean([r["official"] for r in result["tasks"].values()]))
    result["mean_port"] = float(np.mean([r["port"] for r in result["tasks"].values()]))
    log(f"{'mean':28s} {result['mean_official']:9.3f} {result['mean_port']:7.3f}")
    return result


MJX_REPLAY_STRIDE = 25  # an MJX backend replays every 25th step (20 per episode): one batch of 20 envs per goal


def replay_report(tasks, goals=(0, 17, 33), seed: int = 0, log=print,
                  reward_version: str = DEFAULT_REWARD_VERSION, impl: str = EXACT_IMPL,
                  stride: int | None = None) -> dict:
    """Max state-replay errors per task over expert episodes on the given goal indices.

    ``impl`` is the port's physics backend; the exact one replays every step of each episode, an MJX
    one every ``stride``-th (default ``MJX_REPLAY_STRIDE``: a 500-env MJX batch costs minutes on CPU).

    With ``reward_version="v1"`` both sides use the V1 reward; ``reward_rel`` is its ``relative_error``
    and ``success`` counts the steps where the official V1 env's success (its V1 branch's own, on some
    tasks) differs from the port's, which is V2's in both versions; ``fn_rel`` / ``fn_rel_moved`` are
    ``reward_v1_errors`` on the same goals (the V1 reward on official states, object moved near the hand)."""
    from envs.sawyer import SawyerEnv

    check_reward_version(reward_version)
    impl = check_impl(impl)
    stride = stride or (1 if impl == EXACT_IMPL else MJX_REPLAY_STRIDE)
    names = resolve_tasks(tasks)
    bench = benchmark_for(names)
    out = {}
    log(f"{'task':26s} {'obs':>9s} {'reward':>9s} {'rel':>9s} {'success':>8s} {'obs(warm)':>10s} {'qpos(warm)':>10s}")
    for name in names:
        t0 = time.perf_counter()
        env = SawyerEnv(name, seed=seed, benchmark=bench, impl=impl, eval_mode=True, reward_version=reward_version)
        trajs = [official_trajectory(name, env.goals[g], env.task_model, reward_version=reward_version) for g in goals]
        step, steps = jax.jit(env.step), np.arange(0, min(len(t["action"]) for t in trajs), stride)
        errs = [replay_errors(env, g, tr, steps, step) for g, tr in zip(goals, trajs)]
        row = {k: float(max(e[k].max() for e in errs)) for k in errs[0]}
        row["success"] = int(sum(e["success"].sum() for e in errs))
        row["reward_range"] = [float(min(t["reward"].min() for t in trajs)), float(max(t["reward"].max() for t in trajs))]
        if reward_version == "v1":
            fn = reward_v1_errors(name, env.goals[list(goals)])
            row["fn_rel"], row["fn_rel_moved"] = float(fn["rel"].max()), float(fn["rel_moved"].max())
        out[name] = row
        fn = f" fn {row['fn_rel']:8.1e} moved {row['fn_rel_moved']:8.1e}" if reward_version == "v1" else ""
        log(f"{name:26s} {row['obs']:9.1e} {row['reward']:9.1e} {row['reward_rel']:9.1e} {row['success']:8d} "
            f"{row['obs_warm']:10.1e} {row['qpos_warm']:10.1e}{fn}  {time.perf_counter() - t0:.0f}s")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m envs.parity", description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", default="mt10", help="mt10, mt50, or comma-separated task names")
    p.add_argument("--episodes", type=int, default=20, help="episodes per task (distinct goals up to 50)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--impl", default=DEFAULT_IMPL, help=f"physics backend: {', '.join(IMPL_CHOICES)}")
    p.add_argument("--json", default=None, help="write the result here")
    p.add_argument("--replay", action="store_true", help="state-replay error table instead of expert parity")
    p.add_argument("--reward-version", default=DEFAULT_REWARD_VERSION,
                   help=f"reward function of both sides: {', '.join(REWARD_VERSIONS)} (success is the same in both)")
    args = p.parse_args(argv)
    if args.episodes <= 0:
        print(f"error: --episodes must be positive, got {args.episodes}", file=sys.stderr)
        return 2
    if args.impl not in IMPL_CHOICES:
        print(f"error: unknown --impl '{args.impl}'; valid: {', '.join(IMPL_CHOICES)}", file=sys.stderr)
        return 2
    if args.reward_version not in REWARD_VERSIONS:
        print(f"error: unknown --reward-version '{args.reward_version}'; valid: {', '.join(REWARD_VERSIONS)}", file=sys.stderr)
        return 2
    try:
        names = resolve_tasks(args.tasks)
        if args.reward_version == "v1":
            from envs.tasks import PORTED

            missing = [n for n in names if not PORTED[n].has_v1]
            if missing:
                print(f"error: no V1 reward ported yet for {', '.join(missing)}", file=sys.stderr)
                return 2
        if args.replay:
            result = replay_report(args.tasks, seed=args.seed, reward_version=args.reward_version, impl=args.impl)
        else:
            result = run(args.tasks, args.episodes, args.seed, args.impl, reward_version=args.reward_version)
    except (UnknownTaskError, BackendUnavailableError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
