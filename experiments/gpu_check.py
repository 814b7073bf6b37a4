"""``make gpu-check`` (``python -m experiments.gpu_check``): the accelerator check, prepared as one command.

On a machine with an NVIDIA GPU it runs, in this order, and stops at the first step that breaks
(exit 1, the step, its error and traceback in the report and on stderr):

1. ``device``: JAX's backend and devices (a GPU is required unless ``--tiny``/``--no-require-gpu``),
   Warp's CUDA devices when ``--impl warp``, the driver (``nvidia-smi``), package versions and where
   each was imported from (the offline bundle's folder, or the venv);
2. ``parity``: expert parity on the chosen backend (``envs.parity.run``: official experts on official
   Meta-World and on the port, plus open-loop agreement with the exact ``mujoco`` backend); fails if
   a task's success gap exceeds ``--parity-max-gap``;
3. ``bench``: env-only steps/s and first-call (compile) seconds of ``experiments.bench.port_sps`` for
   each task set and batch;
4. ``loop``: the full TOPPO loop's steps/s and compile time (``experiments.bench.train_sps``);
5. ``training``: ``python -m toppo_jax.train`` in a child process, time-boxed: after its seconds it
   gets SIGTERM, ends its chunk and checkpoints (exit 0); the report keeps its env steps, steps/s,
   compile time and losses from ``metrics.jsonl``.

The JSON and markdown report (``OUT/gpu_check.json``, ``OUT/gpu_check.md``) is rewritten after
every step, so a run killed from outside still leaves what it measured. ``--budget-s`` is the wall
time the check should fit in (8 minutes on the GPU, after install): bench rows and the loop that
would start past it are skipped and named, the training gets what is left (at least
``--train-min-s``), and a run over budget exits 4 after writing everything. ``--tiny`` picks CPU
sizes (one or two tasks, the ``mujoco`` backend) so ``make test`` runs the whole check end to end.
Sizes of the GPU defaults are chosen to fit the budget from CPU figures (docs/benchmarks.md, "GPU");
the first GPU run's report is what sizes them for real.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

EXIT_BROKEN, EXIT_OVER_BUDGET = 1, 4
LOOP_MINIBATCHES = 8  # experiments.bench.train_sps: samples per task per iteration are split into 8 minibatches
PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "chex", "mujoco", "mujoco-mjx", "warp-lang", "metaworld",
            "numpy", "tyro")  # fmt: skip
MODULES = {"jax": "jax", "jaxlib": "jaxlib", "mujoco": "mujoco", "warp-lang": "warp", "metaworld": "metaworld", "flax": "flax"}


class CheckFailed(RuntimeError):
    """A step ran but its result is wrong (no GPU, a parity gap, a training run that failed)."""


@dataclasses.dataclass(frozen=True)
class Sizes:
    impl: str
    require_gpu: bool
    parity_tasks: str
    parity_episodes: int
    parity_max_gap: float
    bench_tasks: tuple[str, ...]  # task sets, each timed at every batch
    batches: tuple[int, ...]
    scan: int
    loop_tasks: str
    loop_envs_per_task: int
    loop_rollout: int
    loop_seconds: float
    train_tasks: str
    train_envs_per_task: int
    train_rollout: int
    train_seconds: float  # 0: what is left of the budget (at least train_min_s)
    train_min_s: float
    train_total_env_steps: int
    train_extra: tuple[str, ...]  # more `toppo_jax.train` flags
    budget_s: float


# GPU: the check (warp MT10 parity at 5 episodes; MT10 and MT50 env-only at 1K/4K/16K; the
# loop; a time-boxed MT10 training) inside 8 minutes after install.
GPU = Sizes(
    impl="warp", require_gpu=True, parity_tasks="mt10", parity_episodes=5, parity_max_gap=0.2,
    bench_tasks=("mt10", "mt50"), batches=(1024, 4096, 16384), scan=50,
    loop_tasks="mt10", loop_envs_per_task=256, loop_rollout=100, loop_seconds=15.0,
    train_tasks="mt10", train_envs_per_task=64, train_rollout=500, train_seconds=0.0, train_min_s=60.0,
    train_total_env_steps=20_000_000, train_extra=("--eval-every", "0", "--eval-episodes", "10"),
    budget_s=480.0,
)  # fmt: skip
# CPU, `make test`: the same steps on one or two tasks, the exact backend, seconds each.
TINY = Sizes(
    impl="mujoco", require_gpu=False, parity_tasks="reach", parity_episodes=1, parity_max_gap=0.0,
    bench_tasks=("reach", "reach,push"), batches=(2,), scan=5,
    loop_tasks="reach", loop_envs_per_task=2, loop_rollout=16, loop_seconds=0.5,
    train_tasks="reach", train_envs_per_task=2, train_rollout=10, train_seconds=300.0, train_min_s=60.0,
    train_total_env_steps=40,
    train_extra=("--num-epochs", "1", "--num-minibatches", "2", "--actor-hidden", "16", "16", "--critic-hidden", "16", "16",
                 "--eval-every", "0", "--eval-episodes", "1"),
    budget_s=900.0,  # about 1 CPU-minute; a shared 2-core machine stretches the wall time
)  # fmt: skip


class Report:
    """The check's JSON and markdown, rewritten after every step."""

    def __init__(self, out: Path, sizes: Sizes, argv: list[str]):
        self.out, self.t0 = out, time.perf_counter()
        out.mkdir(parents=True, exist_ok=True)
        self.data: dict = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "argv": argv, "sizes": dataclasses.asdict(sizes),
                           "steps": {}, "compile_s": {}, "skipped": [], "status": "running"}  # fmt: skip

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def write(self) -> None:
        self.data["wall_s"] = self.elapsed()
        (self.out / "gpu_check.json").write_text(json.dumps(self.data, indent=2, default=str) + "\n")
        (self.out / "gpu_check.md").write_text(markdown(self.data))


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _origins() -> dict:
    """The folder each key package was imported from: shows whether an offline bundle is the one in use."""
    out = {}
    for dist, module in MODULES.items():
        try:
            out[dist] = str(Path(importlib.import_module(module).__file__).parent.parent)
        except Exception as e:  # noqa: BLE001 (reported, judged by the steps that need it)
            out[dist] = f"not importable: {type(e).__name__}: {e}"
    return out


def _nvidia_smi() -> str | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    q = subprocess.run([exe, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"], capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    return q.stdout.strip() or q.stderr.strip()


def step_device(sizes: Sizes, log) -> dict:
    import jax

    devices = jax.devices()
    out = {"python": sys.version.split()[0], "platform": platform.platform(), "jax_backend": jax.default_backend(),
           "devices": [f"{d.platform}:{getattr(d, 'device_kind', '')}" for d in devices], "versions": _versions(),
           "imported_from": _origins(), "nvidia_smi": _nvidia_smi(), "cpu_count": os.cpu_count()}  # fmt: skip
    log(f"python {out['python']}, jax {out['versions']['jax']} on {out['jax_backend']}: {', '.join(out['devices'])}")
    log(f"nvidia-smi: {out['nvidia_smi'] or 'not found'}")
    for dist, where in out["imported_from"].items():
        log(f"  {dist:10s} {out['versions'].get(dist) or '-':10s} {where}")
    if sizes.require_gpu and out["jax_backend"] != "gpu":
        raise CheckFailed(f"no GPU for JAX: backend is '{out['jax_backend']}' ({', '.join(out['devices'])}); install the "
                          "gpu extra (make install-gpu) or a CUDA jax, or run with --tiny / --no-require-gpu")
    if sizes.impl == "warp":
        import warp as wp

        wp.config.quiet = True
        wp.init()
        out["warp_devices"] = [str(d) for d in wp.get_devices()]
        out["warp_cuda_devices"] = wp.get_cuda_device_count()
        log(f"warp {wp.config.version}: {', '.join(out['warp_devices']) or 'no devices'}")
        if sizes.require_gpu and not out["warp_cuda_devices"]:
            raise CheckFailed(f"warp {wp.config.version} sees no CUDA device ({out['warp_devices']}): driver too old for its "
                              "CUDA 13 build (R580+ needed) or no GPU")
    return out


def step_parity(sizes: Sizes, log) -> dict:
    from envs import parity

    result = parity.run(sizes.parity_tasks, sizes.parity_episodes, 0, sizes.impl, log=log)
    gaps = {t: r["port"] - r["official"] for t, r in result["tasks"].items()}
    result["max_abs_gap"] = max(abs(g) for g in gaps.values())
    bad = {t: round(g, 3) for t, g in gaps.items() if abs(g) > sizes.parity_max_gap + 1e-9}
    if bad:
        raise CheckFailed(f"parity on {sizes.impl}: success gap over {sizes.parity_max_gap} (port - official) on {bad}")
    return result


def step_bench(sizes: Sizes, log, report: Report) -> dict:
    from experiments import bench

    rows = []
    for tasks in sizes.bench_tasks:
        for batch in sizes.batches:
            if report.elapsed() > sizes.budget_s:
                report.data["skipped"].append(f"bench {tasks} batch {batch}")
                log(f"SKIPPED bench {tasks} batch {batch}: past the {sizes.budget_s:.0f}s budget")
                continue
            r = bench.port_sps(tasks, batch, sizes.scan, sizes.impl)
            rows.append({"tasks": tasks, **r})
            report.data["compile_s"][f"bench {tasks} batch {r['batch']}"] = r["first_call_s"]
            log(f"bench {tasks:10s} batch {r['batch']:6d}: {r['env_steps_per_s']:12,.0f} env steps/s "
                f"(first call {r['first_call_s']:.1f}s)")
    return {"rows": rows, "scan": sizes.scan}


def step_loop(sizes: Sizes, log, report: Report) -> dict:
    from experiments import bench

    if report.elapsed() > sizes.budget_s:
        report.data["skipped"].append("loop")
        log(f"SKIPPED loop: past the {sizes.budget_s:.0f}s budget")
        return {"skipped": True}
    r = bench.train_sps(sizes.loop_tasks, True, sizes.impl, envs_per_task=sizes.loop_envs_per_task,
                        rollout_length=sizes.loop_rollout, seconds=sizes.loop_seconds)  # fmt: skip
    report.data["compile_s"]["loop (training chunk)"] = r["first_call_s"]
    log(f"loop {sizes.loop_tasks}: {r['env_steps_per_s']:,.0f} env steps/s ({r['num_envs']} envs x {r['rollout_length']} "
        f"steps per iteration; first call {r['first_call_s']:.1f}s)")
    return {"tasks": sizes.loop_tasks, **r}


def training_argv(sizes: Sizes, out: Path) -> list[str]:
    return ["--tasks", sizes.train_tasks, "--impl", sizes.impl, "--out", str(out), "--overwrite", "--no-wandb", "--no-videos",
            "--envs-per-task", str(sizes.train_envs_per_task), "--rollout-length", str(sizes.train_rollout),
            "--total-env-steps", str(sizes.train_total_env_steps), *sizes.train_extra]  # fmt: skip


def step_training(sizes: Sizes, log, report: Report) -> dict:
    seconds = sizes.train_seconds or max(sizes.train_min_s, sizes.budget_s - report.elapsed() - 30.0)
    run_dir = report.out / "train"
    site = ["-S"] if sys.flags.no_site else []  # a check run on PYTHONPATH alone (offline bundle test) trains the same way
    cmd = [sys.executable, *site, "-m", "toppo_jax.train", *training_argv(sizes, run_dir)]
    log(f"training for at most {seconds:.0f}s: {' '.join(cmd[1:])}")
    t0 = time.perf_counter()
    with open(report.out / "train.log", "w") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        stopped = False
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            stopped = True  # the time box: end the chunk, checkpoint, exit 0
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=max(120.0, seconds))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise CheckFailed(f"training did not stop within {max(120.0, seconds):.0f}s of SIGTERM; log: {logf.name}") from None
    wall = time.perf_counter() - t0
    tail = (report.out / "train.log").read_text().splitlines()[-15:]
    if proc.returncode != 0:
        raise CheckFailed(f"training exited {proc.returncode}; last lines of {report.out / 'train.log'}:\n" + "\n".join(tail))
    metrics = run_dir / "metrics.jsonl"
    lines = [json.loads(x) for x in metrics.read_text().splitlines()] if metrics.exists() else []
    if not lines:
        raise CheckFailed(f"training wrote no metrics line in {wall:.0f}s (stopped by the time box: {stopped}); raise "
                          "--train-seconds, or see " + str(report.out / "train.log"))
    last = lines[-1]
    compile_s = next((x["perf/compile_s"] for x in lines if "perf/compile_s" in x), None)
    report.data["compile_s"]["training (chunk + evaluation)"] = compile_s
    sps = [x["sps"] for x in lines if "sps" in x]
    out = {"tasks": sizes.train_tasks, "wall_s": wall, "stopped_by_time_box": stopped, "env_steps": last["env_steps"],
           "chunks": len(lines), "sps_median": float(sorted(sps)[len(sps) // 2]) if sps else None, "compile_s": compile_s,
           "last": {k: v for k, v in last.items() if k.startswith(("train/value_loss", "train/policy_loss", "eval/success_mean",
                                                                     "perf/", "sps", "env_steps"))}}  # fmt: skip
    log(f"training: {out['env_steps']:,} env steps in {wall:.0f}s ({len(lines)} chunks, median {out['sps_median'] or 0:,.0f} sps, "
        f"compile {compile_s or 0:.1f}s{', stopped by the time box' if stopped else ''})")
    return out


STEPS = ("device", "parity", "bench", "loop", "training")


def run_check(sizes: Sizes, out: Path, argv: list[str], steps=STEPS, log=print) -> int:
    report = Report(out, sizes, argv)
    cache = Path(os.environ.get("TOPPO_CACHE_DIR", Path.home() / ".cache" / "toppo_jax"))
    import jax

    jax.config.update("jax_compilation_cache_dir", str(cache / "jax"))
    fns = {"device": lambda: step_device(sizes, log), "parity": lambda: step_parity(sizes, log),
           "bench": lambda: step_bench(sizes, log, report), "loop": lambda: step_loop(sizes, log, report),
           "training": lambda: step_training(sizes, log, report)}  # fmt: skip
    for name in steps:
        log(f"== {name} ({report.elapsed():.0f}s)")
        t0 = time.perf_counter()
        try:
            result = fns[name]()
        except BaseException as e:  # noqa: BLE001 (every failure, KeyboardInterrupt too, ends in the report)
            report.data["steps"][name] = {"status": "failed", "s": time.perf_counter() - t0}
            report.data["status"] = "failed"
            report.data["failed"] = {"step": name, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
            report.write()
            print(traceback.format_exc(), file=sys.stderr)
            print(f"gpu-check FAILED at step '{name}': {type(e).__name__}: {e}\nreport: {out / 'gpu_check.md'}", file=sys.stderr)
            return EXIT_BROKEN
        report.data["steps"][name] = {"status": "ok", "s": time.perf_counter() - t0, "result": result}
        report.write()
    over = report.elapsed() > sizes.budget_s
    report.data["status"] = "over budget" if over else "ok"
    report.write()
    log(markdown(report.data))
    if over:
        print(f"gpu-check OVER BUDGET: {report.elapsed():.0f}s > {sizes.budget_s:.0f}s"
              f"{'; skipped: ' + ', '.join(report.data['skipped']) if report.data['skipped'] else ''}", file=sys.stderr)
        return EXIT_OVER_BUDGET
    return 0


def _fmt(x, spec=",.0f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def markdown(data: dict) -> str:
    s, steps = data["sizes"], data["steps"]
    lines = [f"# gpu-check, {data['date']}: {data['status']}", "",
             f"Wall time {data.get('wall_s', 0):.0f} s (budget {s['budget_s']:.0f} s), backend `{s['impl']}`.", "",
             "| step | status | seconds |", "|---|---|---|"]  # fmt: skip
    lines += [f"| {k} | {v['status']} | {v['s']:.1f} |" for k, v in steps.items()]
    if data.get("failed"):
        lines += ["", f"**Failed at `{data['failed']['step']}`**: {data['failed']['error']}"]
    if data["skipped"]:
        lines += ["", "Skipped (past the budget): " + ", ".join(data["skipped"])]
    dev = steps.get("device", {}).get("result")
    if dev:
        lines += ["", f"Device: jax {dev['versions']['jax']} on {dev['jax_backend']} ({', '.join(dev['devices'])}); "
                  f"nvidia-smi: {dev['nvidia_smi'] or '-'}; python {dev['python']}; warp {dev['versions']['warp-lang'] or '-'}, "
                  f"mujoco {dev['versions']['mujoco'] or '-'}."]  # fmt: skip
    par = steps.get("parity", {}).get("result")
    if par:
        lines += ["", f"Expert parity, {par['episodes']} episodes per task, `{par['impl']}` (max |gap| {par['max_abs_gap']:.2f}):", "",
                  "| task | official | port |", "|---|---|---|"]  # fmt: skip
        lines += [f"| {t} | {r['official']:.2f} | {r['port']:.2f} |" for t, r in par["tasks"].items()]
        lines.append(f"| mean | {par['mean_official']:.3f} | {par['mean_port']:.3f} |")
    bench = steps.get("bench", {}).get("result")
    if bench and bench["rows"]:
        lines += ["", f"Env only, random actions, {bench['scan']}-step jitted scan:", "",
                  "| tasks | batch | env steps/s | first call (s) |", "|---|---|---|---|"]  # fmt: skip
        lines += [f"| {r['tasks']} | {r['batch']} | {_fmt(r['env_steps_per_s'])} | {r['first_call_s']:.1f} |" for r in bench["rows"]]
    loop = steps.get("loop", {}).get("result")
    if loop and not loop.get("skipped"):
        lines += ["", f"Full TOPPO loop, {loop['tasks']}, {loop['num_envs']} envs x {loop['rollout_length']} steps per iteration: "
                  f"{_fmt(loop['env_steps_per_s'])} env steps/s (first call {loop['first_call_s']:.1f} s)."]  # fmt: skip
    tr = steps.get("training", {}).get("result")
    if tr:
        lines += ["", f"Training, {tr['tasks']}: {tr['env_steps']:,} env steps in {tr['wall_s']:.0f} s, {tr['chunks']} chunks, "
                  f"median {_fmt(tr['sps_median'])} env steps/s{' (stopped by the time box)' if tr['stopped_by_time_box'] else ''}."]
    if data["compile_s"]:
        lines += ["", "| compile (first call) | seconds |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v, '.1f')} |" for k, v in data["compile_s"].items()]
    return "\n".join(lines) + "\n"


def parse(argv: list[str]) -> tuple[Sizes, argparse.Namespace]:
    p = argparse.ArgumentParser(prog="python -m experiments.gpu_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="CPU sizes (one or two tasks, mujoco backend): what make test runs")
    p.add_argument("--out", default="runs/gpu_check", help="report folder: gpu_check.json, gpu_check.md, train/, train.log")
    p.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)} (in this order)")
    ints = lambda v: tuple(int(x) for x in v.split(","))  # noqa: E731
    fields = {f.name: f for f in dataclasses.fields(Sizes)}
    for name in fields:
        flag = "--" + name.replace("_", "-")
        if name == "require_gpu":
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        elif name == "bench_tasks":
            p.add_argument(flag, type=lambda v: tuple(v.split(";")), default=None, help="task sets separated by ';', e.g. 'mt10;mt50'")
        elif name == "batches":
            p.add_argument(flag, type=ints, default=None, help="comma-separated, e.g. 1024,4096,16384")
        elif name == "train_extra":
            p.add_argument(flag, type=lambda v: tuple(v.split()), default=None, help="more toppo_jax.train flags, one string (--train-extra='--seed 1')")
        else:
            kind = {"int": int, "float": float, "str": str}[fields[name].type]
            p.add_argument(flag, type=kind, default=None)
    args = p.parse_args(argv)
    base = TINY if args.tiny else GPU
    sizes = dataclasses.replace(base, **{k: getattr(args, k) for k in fields if getattr(args, k) is not None})
    steps = tuple(args.steps.split(","))
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        p.error(f"unknown --steps {','.join(unknown)}; valid: {','.join(STEPS)}")
    args.steps = steps
    if (sizes.loop_envs_per_task * sizes.loop_rollout) % LOOP_MINIBATCHES:
        p.error(f"--loop-envs-per-task {sizes.loop_envs_per_task} x --loop-rollout {sizes.loop_rollout} must be a multiple of "
                f"the loop's {LOOP_MINIBATCHES} minibatches")
    return sizes, args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    sizes, args = parse(argv)
    return run_check(sizes, Path(args.out), argv, steps=args.steps, log=lambda m: print(m, flush=True))


if __name__ == "__main__":
    raise SystemExit(main())
