"""``make bench``: env steps/s of the port against official Meta-World, same machine, same run.

    python -m experiments.bench [--quick] [--tasks mt10] [--json docs/bench.json]

Port: the MultiTaskEnv on the chosen backend, uniform random actions, a jitted ``lax.scan`` of
``--scan`` steps, batch sizes spread evenly over the tasks; timed after a warm-up call (the first
call's time is reported as ``compile_s``). Official: the same task mix, one official env per task
(goals from the same benchmark table), random actions, in a single process (one core; Python
overhead included, as users run it), and as a Gymnasium ``AsyncVectorEnv`` with one worker per core. Gymnasium users' view (MT10/MT50): the
port's vector env (`envs.gym`, ``toppo-jax/MT10``) against official ``Meta-World/MT10``, sync and
async, one env per task, numpy in and out.
Writes JSON (contract 4 keys) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np


def port_sps(tasks, batch: int, scan: int, impl: str, seed: int = 0) -> dict:
    import jax
    import jax.numpy as jnp

    import envs

    n_tasks = len(envs.resolve_tasks(tasks))
    per_task = max(1, batch // n_tasks)
    env = envs.make_multitask(tasks, envs_per_task=per_task, seed=seed, impl=impl)

    @jax.jit
    def run(state, key):
        def body(carry, _):
            s, k = carry
            k, sub = jax.random.split(k)
            a = jax.random.uniform(sub, (env.num_envs, 4), minval=-1.0, maxval=1.0)
            return (env.step(s, a), k), None

        (state, key), _ = jax.lax.scan(body, (state, key), None, length=scan)
        return state, key

    state = env.reset(jax.random.PRNGKey(seed))
    t0 = time.perf_counter()
    state, key = jax.block_until_ready(run(state, jax.random.PRNGKey(1)))
    compile_s = time.perf_counter() - t0
    reps = 0
    t0 = time.perf_counter()
    while reps < 2 or time.perf_counter() - t0 < 3.0:
        state, key = jax.block_until_ready(run(state, key))
        reps += 1
    dt = time.perf_counter() - t0
    return {"batch": env.num_envs, "env_steps_per_s": reps * scan * env.num_envs / dt, "first_call_s": compile_s, "impl": env.impl}


def official_sps(tasks, steps_per_task: int, seed: int = 0) -> float:
    """Single process, one official env per task, random actions; env steps/s (one core)."""
    from envs import assets
    from envs.registry import benchmark_for, resolve_tasks

    names = resolve_tasks(tasks)
    table = assets.goal_table(benchmark_for(names), seed)
    rng = np.random.default_rng(seed)
    total, elapsed = 0, 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in names:
            env = assets.official_class(name)()
            env.set_task(assets.make_task_data(name, table[name][0]))
            env.reset()
            actions = rng.uniform(-1, 1, (steps_per_task, 4)).astype(np.float32)
            t0 = time.perf_counter()
            for i in range(steps_per_task):
                _, _, _, trunc, _ = env.step(actions[i])
                if trunc:
                    env.reset()
            elapsed += time.perf_counter() - t0
            total += steps_per_task
    return total / elapsed


def _make_official(name, rand_vec):
    def thunk():
        import gymnasium as gym

        from envs import assets

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            env = assets.official_class(name)()
        env.set_task(assets.make_task_data(name, rand_vec))
        return gym.wrappers.TimeLimit(env, 500)

    return thunk


def official_vector_sps(tasks, steps: int, workers: int, seed: int = 0) -> float:
    """Gymnasium AsyncVectorEnv over the task mix, one env per worker process."""
    import gymnasium as gym

    from envs import assets
    from envs.registry import benchmark_for, resolve_tasks

    names = resolve_tasks(tasks)
    table = assets.goal_table(benchmark_for(names), seed)
    fns = [_make_official(names[i % len(names)], table[names[i % len(names)]][0]) for i in range(workers)]
    venv = gym.vector.AsyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)
    venv.reset(seed=seed)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for _ in range(steps):
        venv.step(rng.uniform(-1, 1, (workers, 4)).astype(np.float32))
    dt = time.perf_counter() - t0
    venv.close()
    return steps * workers / dt


GYM_IDS = {"mt10": ("toppo-jax/MT10", "Meta-World/MT10"), "mt50": ("toppo-jax/MT50", "Meta-World/MT50")}


def gym_vector_sps(env_id: str, steps: int, seed: int = 0, **kwargs) -> float:
    """env steps/s of a Gymnasium vector env (`gym.make_vec(env_id, ...)`), random actions, numpy in
    and out as a PyTorch trainer would use it; timed after one warm-up step (the port's compile)."""
    import gymnasium as gym

    import envs.gym  # noqa: F401  (registers toppo-jax/*)
    import metaworld  # noqa: F401  (registers Meta-World/*)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        venv = gym.make_vec(env_id, seed=seed, **kwargs)
        try:
            venv.reset(seed=seed)
            venv.action_space.seed(seed)
            venv.step(venv.action_space.sample())
            t0 = time.perf_counter()
            for _ in range(steps):
                venv.step(venv.action_space.sample())
            dt = time.perf_counter() - t0
            return steps * venv.num_envs / dt
        finally:
            venv.close()


def gym_comparison(tasks: str, steps: int) -> dict:
    """The port's Gymnasium vector env vs official Meta-World's, sync and async, same task set and run."""
    port_id, official_id = GYM_IDS[tasks.lower()]
    return {
        "port_env_steps_per_s": gym_vector_sps(port_id, steps),
        "official_sync_env_steps_per_s": gym_vector_sps(official_id, steps, vector_strategy="sync"),
        "official_async_env_steps_per_s": gym_vector_sps(official_id, steps, vector_strategy="async"),
        "steps": steps,
    }


def train_sps(tasks, quick: bool, impl: str, seed: int = 0, devices: int = 1, *, envs_per_task: int | None = None,
              rollout_length: int | None = None, seconds: float | None = None) -> dict:
    """The full TOPPO loop (rollout + GAE + epochs of per-task-gradient updates), default TOPPO
    config except the rollout shape: env steps/s of `train_chunk` after its compile, timed over at
    least `seconds`; on `devices` devices, data parallel as `train --devices`. The shape and time
    default to 4 envs/task x 100 steps for 5 s (quick), else 16 x 500 for 30 s."""
    import jax

    import envs
    from toppo_jax import config as cfg
    from toppo_jax import learner, sharding

    envs_per_task = envs_per_task or (4 if quick else 16)
    length = rollout_length or (100 if quick else 500)
    seconds = (5.0 if quick else 30.0) if seconds is None else seconds
    config = cfg.replace(
        cfg.Config(), env={"envs_per_task": envs_per_task, "impl": impl}, ppo={"rollout_length": length, "num_minibatches": 8},
        train={"devices": devices},
    )
    names = envs.resolve_tasks(tasks)
    mesh = sharding.device_mesh(config, len(names))
    env = envs.make_multitask(names, envs_per_task, seed=seed, impl=impl, mesh=mesh)
    trainer = learner.make_train(config, env, mesh=mesh)
    shardings = sharding.state_shardings(jax.eval_shape(trainer.init, jax.random.PRNGKey(seed)), mesh, 1)
    state = jax.jit(trainer.init, out_shardings=shardings)(jax.random.PRNGKey(seed))
    chunk = jax.jit(trainer.train_chunk, donate_argnums=0, out_shardings=None if mesh is None else (shardings, None))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Some donated buffers were not usable")
        t0 = time.perf_counter()
        state, _ = jax.block_until_ready(chunk(state))
        first = time.perf_counter() - t0
        reps, t0 = 0, time.perf_counter()
        while reps < 1 or time.perf_counter() - t0 < seconds:
            state, _ = jax.block_until_ready(chunk(state))
            reps += 1
        dt = time.perf_counter() - t0
    return {"env_steps_per_s": reps * trainer.env_steps_per_chunk / dt, "first_call_s": first, "num_envs": env.num_envs,
            "devices": devices, "rollout_length": length, "chunks_timed": reps}


def compile_scaling(tasks, counts, impl: str) -> list[dict]:
    """First-call (compile) seconds of a jitted 2-step scan over the first N tasks, one env each, with
    JAX's persistent cache off (Warp's kernel cache warmed by a 1-task call first)."""
    import jax

    import envs

    names = envs.resolve_tasks(tasks)
    port_sps(names[:1], 1, 2, impl)  # warm Warp's kernel cache / the mujoco reset tables
    rows = []
    jax.config.update("jax_enable_compilation_cache", False)
    try:
        for n in counts:
            r = port_sps(names[:n], n, 2, impl)
            rows.append({"tasks": n, "first_call_s": r["first_call_s"], "impl": r["impl"]})
            print(f"compile, {n:2d} task(s), impl={r['impl']}: {r['first_call_s']:.1f}s", flush=True)
    finally:
        jax.config.update("jax_enable_compilation_cache", True)
    return rows


def per_task_table(tasks, batch: int, scan: int, impl: str) -> list[dict]:
    """Per task: the first call (compile) and env steps/s of a `batch`-env SawyerEnv scan, and official 1-process steps/s."""
    from envs.registry import resolve_tasks

    rows = []
    for name in resolve_tasks(tasks):
        r = port_sps([name], batch, scan, impl)
        off = official_sps([name], 300)
        rows.append({"task": name, "first_call_s": r["first_call_s"], "port_env_steps_per_s": r["env_steps_per_s"],
                     "official_env_steps_per_s": off, "batch": r["batch"]})  # fmt: skip
        print(f"{name:28s} first call {r['first_call_s']:5.1f}s  port {r['env_steps_per_s']:8.0f}  official {off:6.0f}", flush=True)
    return rows


def regression_report(result: dict, baseline_path: str | None, tolerance: float = 0.2) -> list[str]:
    """Lines naming each figure more than `tolerance` slower than the committed baseline on the same device."""
    if not baseline_path or not Path(baseline_path).exists():
        return []
    base = json.loads(Path(baseline_path).read_text())
    if base.get("device") != result.get("device") or base.get("tasks") != result.get("tasks"):
        return [f"regression check skipped: baseline {baseline_path} is from {base.get('device')} on {base.get('tasks')}"]
    lines = []
    pairs = [("port_env_steps_per_s", base.get("port_env_steps_per_s"), result.get("port_env_steps_per_s"))]
    old = {r["batch"]: r["env_steps_per_s"] for r in base.get("port_by_batch", [])}
    pairs += [(f"port batch {r['batch']}", old.get(r["batch"]), r["env_steps_per_s"]) for r in result.get("port_by_batch", [])]
    if (base.get("train") or {}).get("env_steps_per_s") and (result.get("train") or {}).get("env_steps_per_s"):
        pairs.append(("train_env_steps_per_s", base["train"]["env_steps_per_s"], result["train"]["env_steps_per_s"]))
    # The official env in the same run measures how fast the machine is today (a shared VM varies by
    # tens of percent within a day): figures are compared relative to it when both runs have it.
    scale, unit = 1.0, ""
    if base.get("official_env_steps_per_s") and result.get("official_env_steps_per_s"):
        scale = result["official_env_steps_per_s"] / base["official_env_steps_per_s"]
        unit = f", relative to official Meta-World in each run (official now x{scale:.2f} the baseline's)"
    for name, was, now in pairs:
        if was and now and now < (1.0 - tolerance) * was * scale:
            lines.append(f"REGRESSION {name}: {now:,.0f} env steps/s vs {was:,.0f} in {baseline_path} "
                         f"({now / (was * scale) - 1:+.0%}{unit})")
    return lines or [f"no regression > {tolerance:.0%} against {baseline_path} ({base.get('date')}{unit})"]


def peak_memory() -> dict:
    """Peak resident memory of this process (host) and peak device memory where the device reports it (GPU)."""
    import resource

    import jax

    out = {"host_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        out["device_peak_mb"] = stats["peak_bytes_in_use"] / 2**20
    return out


def scaling_plot(result: dict, path: Path) -> None:
    """env steps/s vs batch (log-log): the port's backend and the official env's lines of the same run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["port_by_batch"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["batch"] for r in rows], [r["env_steps_per_s"] for r in rows], "o-", label=f"port, {result['impl']} backend")
    ax.axhline(result["official_env_steps_per_s"], color="gray", ls="--", label="official, 1 process")
    ax.axhline(result["official_vector_env_steps_per_s"], color="gray", ls=":",
               label=f"official, AsyncVectorEnv x{result['official_vector_workers']}")
    if result.get("train_env_steps_per_s"):
        ax.axhline(result["train_env_steps_per_s"], color="tab:red", ls="-.", label="full TOPPO loop")
    ax.set(xscale="log", yscale="log", xlabel="envs (batch)", ylabel="env steps / s",
           title=f"{result['tasks']} — {result['device']}\n{result['date']}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown_table(result: dict) -> str:
    off1 = result["official_env_steps_per_s"]
    lines = [f"{result['tasks']}, {result['device']}, {result['date']}, impl={result['impl']}", "",
             "| batch | port env steps/s | vs official (1 process) |", "|---|---|---|"]
    lines += [f"| {r['batch']} | {r['env_steps_per_s']:.0f} | {r['env_steps_per_s'] / off1:.1f}x |" for r in result["port_by_batch"]]
    lines.append(f"| official 1 process | {off1:.0f} | 1.0x |")
    lines.append(f"| official AsyncVectorEnv x{result['official_vector_workers']} | {result['official_vector_env_steps_per_s']:.0f} | "
                 f"{result['official_vector_env_steps_per_s'] / off1:.1f}x |")
    if result.get("gym"):
        gym = result["gym"]
        for label, key in (("port", "port"), ("official sync", "official_sync"), ("official async", "official_async")):
            value = gym[f"{key}_env_steps_per_s"]
            lines.append(f"| Gymnasium vector env, {label} (one env per task) | {value:.0f} | {value / off1:.1f}x |")
    if result.get("train"):
        tr = result["train"]
        lines.append(f"| full TOPPO training loop ({tr['num_envs']} envs) | {tr['env_steps_per_s']:.0f} | {tr['env_steps_per_s'] / off1:.1f}x |")
    mem = result.get("memory", {})
    lines.append("")
    lines.append(f"peak host RSS {mem.get('host_peak_rss_mb', 0):,.0f} MB" +
                 (f", peak device memory {mem['device_peak_mb']:,.0f} MB" if "device_peak_mb" in mem else ""))
    return "\n".join(lines)


def device_name() -> str:
    import jax

    d = jax.devices()[0]
    cpu = platform.processor() or platform.machine()
    return f"{d.platform}:{getattr(d, 'device_kind', '')} ({os.cpu_count()} cores, {cpu})"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="batches 1, 64, 512 and short timings (a few minutes on 2 cores)")
    p.add_argument("--tasks", default="mt10")
    p.add_argument("--impl", default="mujoco")
    p.add_argument("--scan", type=int, default=50)
    p.add_argument("--json", default=None)
    p.add_argument("--per-task", type=int, default=0, metavar="BATCH", help="also time every task alone at this batch (compile and steps/s)")
    p.add_argument("--per-task-tasks", default=None, metavar="TASKS", help="the tasks --per-task times (default: --tasks), e.g. mt50")
    p.add_argument("--baseline", default=None, help="a committed bench JSON: report figures > 20%% slower on the same device")
    p.add_argument("--batches", default=None, help="comma-separated batch sizes (default 1,64,512 quick; 1..4096 full)")
    p.add_argument("--skip-train", action="store_true", help="env-only figures (no full-training-loop timing)")
    p.add_argument("--skip-gym", action="store_true", help="no Gymnasium vector env comparison (port vs official, sync and async)")
    p.add_argument("--devices-scaling", default=None, metavar="COUNTS",
                   help="e.g. 1,2,4: the full training loop data parallel on N devices (on CPU: forced host devices)")
    p.add_argument("--compile-scaling", default=None, metavar="COUNTS",
                   help="e.g. 1,3,10: cold compile (XLA cache off) of a 1-env-per-task step for the first N tasks")
    args = p.parse_args(argv)
    device_counts = [int(n) for n in args.devices_scaling.split(",")] if args.devices_scaling else []
    if device_counts and "jax" not in sys.modules:  # CPU: split the host into devices (no effect on GPU/TPU)
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={max(device_counts)}"
    cache = Path(os.environ.get("TOPPO_CACHE_DIR", Path.home() / ".cache" / "toppo_jax"))
    import jax

    jax.config.update("jax_compilation_cache_dir", str(cache / "jax"))

    batches = [1, 64, 512] if args.quick else [1, 64, 512, 1024, 4096]
    if args.batches:
        batches = [int(b) for b in args.batches.split(",")]
    rows = []
    for b in batches:
        scan = args.scan if b > 1 else args.scan * 4
        r = port_sps(args.tasks, b, scan, args.impl)
        rows.append(r)
        print(f"port batch {r['batch']:5d}: {r['env_steps_per_s']:10.0f} env steps/s (first call {r['first_call_s']:.1f}s)", flush=True)
    off1 = official_sps(args.tasks, 300 if args.quick else 1500)
    print(f"official, 1 process: {off1:.0f} env steps/s", flush=True)
    workers = os.cpu_count() or 1
    offv = official_vector_sps(args.tasks, 150 if args.quick else 1000, workers)
    print(f"official, AsyncVectorEnv x{workers}: {offv:.0f} env steps/s", flush=True)
    best = max(rows, key=lambda r: r["env_steps_per_s"])
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "device": device_name(),
        "impl": rows[0]["impl"],
        "tasks": args.tasks,
        "port_env_steps_per_s": best["env_steps_per_s"],
        "port_best_batch": best["batch"],
        "port_by_batch": rows,
        "official_env_steps_per_s": off1,
        "official_vector_env_steps_per_s": offv,
        "official_vector_workers": workers,
        "speedup_vs_official_per_core": best["env_steps_per_s"] / (off1 * workers),
        "compile_s": rows[-1]["first_call_s"],
    }
    if not args.skip_gym and args.tasks.lower() in GYM_IDS:
        result["gym"] = gym = gym_comparison(args.tasks, 100 if args.quick else 500)
        print(f"gymnasium vector env: port {gym['port_env_steps_per_s']:.0f}, official sync {gym['official_sync_env_steps_per_s']:.0f}, "
              f"official async {gym['official_async_env_steps_per_s']:.0f} env steps/s", flush=True)
    tr = None
    if not args.skip_train:
        tr = train_sps(args.tasks, args.quick, args.impl)
        result["train_env_steps_per_s"], result["train"] = tr["env_steps_per_s"], tr
        print(f"full training loop: {tr['env_steps_per_s']:.0f} env steps/s ({tr['num_envs']} envs, first call {tr['first_call_s']:.1f}s)", flush=True)
    if device_counts:
        result["devices_scaling"] = []
        for n in device_counts:
            r = train_sps(args.tasks, args.quick, args.impl, devices=n)
            result["devices_scaling"].append(r)
            print(f"full training loop on {n} device(s): {r['env_steps_per_s']:.0f} env steps/s ({r['num_envs']} envs)", flush=True)
    if args.compile_scaling:
        result["compile_scaling"] = compile_scaling(args.tasks, [int(n) for n in args.compile_scaling.split(",")], args.impl)
    if args.per_task:
        result["per_task"] = per_task_table(args.per_task_tasks or args.tasks, args.per_task, args.scan, args.impl)
    result["memory"] = peak_memory()
    table = markdown_table(result)
    print("\n" + table)
    for line in regression_report(result, args.baseline):
        print(line)
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
        out.with_suffix(".md").write_text(table + "\n")
        scaling_plot(result, out.with_suffix(".png"))
        print(f"wrote {out}, {out.with_suffix('.md')}, {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
