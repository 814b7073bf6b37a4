"""Reproduce a table of the TOPPO paper: every (row, seed) trained as its own resumable run, then the report.

    python -m experiments.reproduce --table ablations-mt10 --seeds 3 [--budget 0.1] [--rows mtppo,toppo] \\
        [--jobs N] [--root DIR] [--report-only] [--wandb] [-- TRAIN FLAGS applied to every row]
    python -m experiments.reproduce --list          # the tables and their rows

A table is a list of rows, each a preset of `toppo_jax.presets` (tables `mt10`, `mt50`, `mt50-v1`,
`ablations-mt10`, `ablations-mt50`, `combiners-mt10`). Each (row, seed) trains in its own run directory
`<root>/<row>/seed<S>` (experiments/runs.py; root `runs/reproduce/<table>`, `-budget<F>` appended when
the budget is not 1) by a `python -m toppo_jax.train` process of its own, one after the other (`--jobs N`:
N at a time), so one failure never stops the table. Rerunning the same command skips finished runs
(their last evaluation is at the budget), resumes stopped ones from their checkpoint, retries failed
ones and leaves diverged ones (exit code 3) marked unless `--retry-diverged`. `--budget F` trains
every row for F x its benchmark budget (2M env steps per task); raising it later resumes finished runs
to the new budget. Train flags after `--` (sizes, `--eval-every`, `--no-videos`, ...) go to every row;
the flags that name a run (`--preset`, `--tasks`, `--seed`, `--num-seeds`, `--sweep`, `--out`,
`--total-env-steps`, `--overwrite`) are the harness's.

Then it writes `<root>/table.md` and `<root>/table.json` (per row: mean success, worst-k for k = 1, 3,
5, 10 and IQM over seeds x tasks, each with a 95% stratified bootstrap interval, experiments/stats.py;
the paper's figure where it reports one; every run that failed, diverged or has not finished, with
its error), `<root>/worst_k.png` (worst-k for k = 1..T per row, the paper's Figure 1b) and
`<root>/d1d2.png` (critic and actor D1/D2 over training, every row on one figure), and with `--wandb`
logs the table and figures to a wandb run (WANDB_MODE as for training: offline unless set).
Each run's output is in `<run>/train.log`, the launcher's verdict in `<run>/status.json`.
Exit code: 0 when every run is done, 1 when some are not, 2 for bad input (one line), 130 stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from experiments import runs, stats

REPO = Path(__file__).resolve().parents[1]
TRAINER = (sys.executable, "-m", "toppo_jax.train")
# Flags that name or size a run: the harness sets them (one run per row and seed, steps from --budget).
OWNED_FLAGS = {
    "--preset": "rows are presets (--rows selects them)",
    "--tasks": "each table's rows set their tasks",
    "--seed": "use --seeds N (seeds 0..N-1, one run each)",
    "--num-seeds": "use --seeds N (one run per seed)",
    "--sweep": "a table row is one config; sweeps are experiments.sweep",
    "--out": "use --root DIR (runs go to DIR/<row>/seed<S>)",
    "--total-env-steps": "use --budget F (F x 2M env steps per task)",
    "--overwrite": "remove a run directory to restart it; --overwrite would restart it on every rerun",
}


class ReproduceError(ValueError):
    """Bad input to the harness (one line naming the value and the choices)."""


# ---------------------------------------------------------------------------------------- tables


@dataclasses.dataclass(frozen=True)
class Row:
    name: str  # the row's name in the table and its directory under the root
    preset: str  # --preset of toppo_jax.train
    flags: tuple[str, ...] = ()  # train flags of this row (after the table's)
    paper: tuple[tuple[str, float], ...] = ()  # (aggregate, value) the paper reports for this row


@dataclasses.dataclass(frozen=True)
class Table:
    name: str
    title: str
    rows: tuple[Row, ...]
    flags: tuple[str, ...] = ()  # train flags of every row
    needs: str = ""  # what the table needs beyond the trainer's defaults (said when a flag is refused)

    def row_names(self) -> list[str]:
        return [row.name for row in self.rows]


ABLATIONS = ("mtppo", "popart", "ln_critic", "popart_ln", "toppo_no_popart", "toppo_no_ln", "toppo")
COMBINER_NAMES = ("mean", "pcgrad", "cagrad", "fairgrad")  # toppo_jax.combiners.COMBINERS (checked by a test)
PAPER = "TOPPO, arXiv 2605.11473"


def _rows(methods: Sequence[str], bench: str, paper: dict[str, tuple] | None = None) -> tuple[Row, ...]:
    return tuple(Row(m, f"{m}-{bench}", paper=(paper or {}).get(m, ())) for m in methods)


TABLES: dict[str, Table] = {t.name: t for t in (
    Table("mt10", "MT10 (V2 rewards): TOPPO vs multi-task PPO", _rows(("toppo", "mtppo"), "mt10", {"toppo": (("mean", 0.972),)})),
    Table("mt50", "MT50 (V2 rewards): TOPPO vs multi-task PPO", _rows(("toppo", "mtppo"), "mt50", {"toppo": (("mean", 0.909),)})),
    Table("mt50-v1", "MT50 with Meta-World's V1 rewards: TOPPO vs multi-task PPO",
          _rows(("toppo", "mtppo"), "mt50", {"toppo": (("iqm", 0.793),)}), flags=("--reward-version", "v1"),
          needs="V1 rewards (the train flag --reward-version v1)"),
    Table("ablations-mt10", "Critic Balancing ablations on MT10", _rows(ABLATIONS, "mt10")),
    Table("ablations-mt50", "Critic Balancing ablations on MT50", _rows(ABLATIONS, "mt50")),
    Table("combiners-mt10", "Gradient combiners on MT10 (PopArt + LN-c; actor x critic combiner)",
          _rows([f"toppo_actor-{a}_critic-{c}" for a in COMBINER_NAMES for c in COMBINER_NAMES], "mt10")),
)}  # fmt: skip


def describe_tables(tables: dict[str, Table] = TABLES) -> str:
    lines = []
    for t in tables.values():
        flags = f" (train flags {' '.join(t.flags)})" if t.flags else ""
        lines.append(f"{t.name}: {t.title}{flags}\n  rows: {', '.join(r.name for r in t.rows)}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ plan


@dataclasses.dataclass(frozen=True)
class RunSpec:
    row: str
    seed: int
    out: Path
    argv: tuple[str, ...]  # train flags, --out included
    target_env_steps: int


@dataclasses.dataclass(frozen=True)
class Plan:
    table: Table
    rows: tuple[Row, ...]
    seeds: tuple[int, ...]
    budget: float
    extra: tuple[str, ...]
    root: Path
    runs: tuple[RunSpec, ...]
    tasks: dict[str, tuple[str, ...]]  # row -> its tasks
    steps: dict[str, int]  # row -> env steps per run
    eval_episodes: dict[str, int]  # row -> evaluation episodes per task (one goal each)


def default_root(table: str, budget: float) -> Path:
    name = table if budget == 1.0 else f"{table}-budget{budget:g}"
    return runs.run_dir("reproduce", name)


def check_extra(extra: Sequence[str]) -> None:
    for arg in extra:
        flag = arg.split("=", 1)[0]
        if flag in OWNED_FLAGS:
            raise ReproduceError(f"train flag {flag} cannot be passed through: {OWNED_FLAGS[flag]}")


def select_rows(table: Table, spec: str | None) -> tuple[Row, ...]:
    if not spec:
        return table.rows
    by_name = {r.name: r for r in table.rows} | {r.preset: r for r in table.rows}
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    for name in wanted:
        if name not in by_name:
            raise ReproduceError(f"--rows {name!r} is not a row of table {table.name}; valid: {', '.join(table.row_names())}")
    chosen = {by_name[name].name for name in wanted}
    return tuple(r for r in table.rows if r.name in chosen)


def make_plan(table: Table, seeds: int, budget: float, extra: Sequence[str] = (), rows: str | None = None,
              root: str | Path | None = None, task_catalog=None) -> Plan:
    """Every (row, seed) run with its flags and env-step target; each row's flags are parsed and
    validated by the trainer's own parser first, so bad flags are one error before anything trains."""
    from toppo_jax import config as cfg
    from toppo_jax import train

    if seeds < 1:
        raise ReproduceError(f"--seeds {seeds} is not valid; give a positive number of seeds")
    if not budget > 0:
        raise ReproduceError(f"--budget {budget:g} is not valid; give a positive fraction of the benchmark budget (1 = 2M env steps per task)")
    check_extra(extra)
    chosen = select_rows(table, rows)
    root = Path(root) if root is not None else default_root(table.name, budget)
    tasks, steps, episodes, specs = {}, {}, {}, []
    for row in chosen:
        argv = ["--preset", row.preset, *table.flags, *row.flags, *extra]
        try:
            config = train.parse_args(argv)
            row_tasks = train.resolve_tasks(config.env.tasks, task_catalog)
            cfg.validate(config, len(row_tasks))
        except cfg.ConfigError as err:
            refused = [f for f in (*table.flags, *row.flags) if f.startswith("--") and f in str(err)]
            if refused:
                raise ReproduceError(f"table {table.name} needs {table.needs or ' '.join(refused)}, which this toppo_jax.train "
                                     f"does not accept yet ({err})") from None
            raise ReproduceError(f"row {row.name} ({' '.join(argv)}): {err}") from None
        tasks[row.name] = row_tasks
        episodes[row.name] = config.train.eval_episodes
        steps[row.name] = max(1, int(round(budget * cfg.total_env_steps(config, len(row_tasks)))))
    for seed in range(seeds):  # seed-major: a partial table has every row at its first seeds
        for row in chosen:
            out = runs.seed_run(root, row.name, seed)
            argv = ("--preset", row.preset, *table.flags, *row.flags, *extra, "--seed", str(seed),
                    "--total-env-steps", str(steps[row.name]), "--out", str(out))
            specs.append(RunSpec(row.name, seed, out, argv, steps[row.name]))
    return Plan(table, chosen, tuple(range(seeds)), budget, tuple(extra), root, tuple(specs), tasks, steps, episodes)


# ---------------------------------------------------------------------------------------- launch


def _error_line(log_text: str, code: int) -> str:
    """The trainer's `error: ...` line, else the last line of its output, with how it ended."""
    lines = [line.strip() for line in log_text.splitlines() if line.strip() and not line.startswith("=== ")]
    errors = [line for line in lines if line.startswith("error:")]
    if errors:
        return errors[-1].removeprefix("error:").strip()
    how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
    return f"{how}: {lines[-1]}" if lines else how


class Launcher:
    """Runs training processes, each in its own session (a terminal's Ctrl-C reaches only the harness,
    which passes one stop request on: each run checkpoints and ends, and no new run starts)."""

    def __init__(self, trainer: Sequence[str] = TRAINER, log: Callable[[str], None] = print):
        self.trainer, self.log = tuple(trainer), log
        self.stop = threading.Event()
        self._procs: set[subprocess.Popen] = set()
        self._lock = threading.Lock()

    def request_stop(self, signum=signal.SIGTERM, _frame=None) -> None:
        if not self.stop.is_set():
            self.log(f"stop requested ({signal.Signals(signum).name}): the running trainings checkpoint and end; "
                     "rerun the same command to resume")
        self.stop.set()
        with self._lock:
            for proc in self._procs:
                proc.send_signal(signum)

    def train(self, spec: RunSpec) -> tuple[str, str | None]:
        """Train one run to its target (resuming it); returns (state, error) and writes its status.json."""
        spec.out.mkdir(parents=True, exist_ok=True)
        command = [*self.trainer, *spec.argv]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
        log_path = spec.out / "train.log"
        started = time.time()
        with open(log_path, "a") as log_file:
            offset = log_file.tell()
            log_file.write(f"=== {datetime.datetime.now().isoformat(timespec='seconds')} {shlex.join(command)}\n")
            log_file.flush()
            proc = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            with self._lock:
                self._procs.add(proc)
            try:
                code = proc.wait()
            finally:
                with self._lock:
                    self._procs.discard(proc)
        with open(log_path) as f:
            f.seek(offset)
            session = f.read()
        state, error = runs.run_state(spec.out, spec.target_env_steps)
        if code == 3:
            state, error = runs.DIVERGED, _error_line(session, code)
        elif self.stop.is_set() and code in (0, -signal.SIGTERM, -signal.SIGINT) and state != runs.DONE:
            state, error = runs.STOPPED, None  # stopped on request (before its handler was up, a signal ends it at once)
        elif code != 0:
            state, error = runs.FAILED, _error_line(session, code)
        elif state != runs.DONE:
            state, error = runs.STOPPED, None
        finals = runs.final_evals(spec.out)
        runs.write_status(spec.out, {
            "state": state, "error": error, "exit_code": code, "command": shlex.join(command),
            "started": datetime.datetime.fromtimestamp(started).isoformat(timespec="seconds"),
            "seconds": round(time.time() - started, 1), "target_env_steps": spec.target_env_steps,
            "env_steps": finals[0]["env_steps"] if finals else None,
        })  # fmt: skip
        return state, error


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m{seconds % 60:02d}s"


def run_plan(plan: Plan, launcher: Launcher, jobs: int = 1, retry_diverged: bool = False) -> None:
    """Train every run that is not done (skipping diverged ones unless `retry_diverged`)."""
    todo = []
    for spec in plan.runs:
        state, error = runs.run_state(spec.out, spec.target_env_steps)
        if state == runs.DONE or (state == runs.DIVERGED and not retry_diverged):
            launcher.log(f"skip {spec.row} seed {spec.seed}: {state}" + (f" ({error})" if error else "") + f" in {spec.out}")
        else:
            todo.append(spec)
    total = len(todo)

    def one(i_spec):
        i, spec = i_spec
        if launcher.stop.is_set():
            return
        launcher.log(f"[{i + 1}/{total}] {spec.row} seed {spec.seed}: training to {spec.target_env_steps:,} env steps "
                     f"in {spec.out} (log: {spec.out / 'train.log'})")
        t0 = time.time()
        state, error = launcher.train(spec)
        finals = runs.final_evals(spec.out)
        result = f", eval mean {np.mean([x['eval/success_mean'] for x in finals]):.3f}" if state == runs.DONE and finals else ""
        launcher.log(f"[{i + 1}/{total}] {spec.row} seed {spec.seed}: {state} after {_clock(time.time() - t0)}{result}"
                     + (f": {error}" if error else ""))

    if jobs <= 1:
        for item in enumerate(todo):
            one(item)
        return
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(one, item) for item in enumerate(todo)]
        while not all(f.done() for f in futures):
            time.sleep(0.5)  # the main thread stays free for signal handlers
        for f in futures:
            f.result()


# ---------------------------------------------------------------------------------------- report


def _run_scores(spec: RunSpec, tasks: Sequence[str]) -> dict:
    """One run's state, error and final per-task success (in the row's task order)."""
    state, error = runs.run_state(spec.out, spec.target_env_steps)
    finals = runs.final_evals(spec.out)
    info = {"seed": spec.seed, "dir": str(spec.out), "state": state, "error": error,
            "env_steps": finals[0]["env_steps"] if finals else None, "target_env_steps": spec.target_env_steps}
    if state == runs.DONE:
        if len(finals) != 1:
            raise ReproduceError(f"{spec.out} holds {len(finals)} members at its last evaluation; a table run trains one seed")
        line = finals[0]
        missing = [t for t in tasks if f"eval/success/{t}" not in line]
        if missing:
            raise ReproduceError(f"{spec.out}: its last evaluation has no success for task(s) {', '.join(missing)}")
        info["success"] = [float(line[f"eval/success/{t}"]) for t in tasks]
        info["success_mean"] = float(line["eval/success_mean"])
    return info


def collect(plan: Plan, reps: int = stats.REPS, bootstrap_seed: int = 0) -> list[dict]:
    """Per row: its runs (every seed, whatever state) and the statistics over its finished runs."""
    out = []
    for row in plan.rows:
        tasks = plan.tasks[row.name]
        row_runs = [_run_scores(spec, tasks) for spec in plan.runs if spec.row == row.name]
        done = [r for r in row_runs if r["state"] == runs.DONE]
        entry = {"row": row.name, "preset": row.preset, "tasks": list(tasks), "env_steps_target": plan.steps[row.name],
                 "runs": row_runs, "paper": dict(row.paper), "num_done": len(done)}
        if done:
            scores = np.array([r["success"] for r in done])
            entry["stats"] = stats.interval_estimates(scores, stats.WORST_K, reps=reps, seed=bootstrap_seed)
            entry["per_task_mean"] = dict(zip(tasks, scores.mean(axis=0).tolist()))
        out.append(entry)
    return out


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def header(plan: Plan, reps: int, command: str | None = None) -> dict:
    steps = sorted(set(plan.steps.values()))
    return {
        "table": plan.table.name,
        "command": command,
        "title": plan.table.title,
        "budget": plan.budget,
        "env_steps_per_run": steps[0] if len(steps) == 1 else steps,
        "eval_episodes_per_task": sorted(set(plan.eval_episodes.values())),
        "seeds": list(plan.seeds),
        "rows": [r.name for r in plan.rows],
        "table_flags": list(plan.table.flags),
        "train_flags": list(plan.extra),
        "bootstrap": {"reps": reps, "confidence": stats.CONFIDENCE, "method": "percentile, stratified over seeds within each task"},
        "root": str(plan.root),
        "commit": _git_commit(),
        "host": socket.gethostname(),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "paper": PAPER,
    }


def _cell(stat) -> str:
    point, lo, hi = stat
    return f"{point:.3f} [{lo:.3f}, {hi:.3f}]"


def _steps(n: int) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.4g}{suffix}"
    return str(n)


AGGREGATES = ("mean", *(f"worst_{k}" for k in stats.WORST_K), "iqm")


def markdown(head: dict, rows: list[dict]) -> str:
    names = {"mean": "mean success", "iqm": "IQM", **{f"worst_{k}": f"worst-{k}" for k in stats.WORST_K}}
    flags = " ".join([*head["table_flags"], *head["train_flags"]]) or "(none)"
    steps = head["env_steps_per_run"]
    lines = [
        f"# Table {head['table']}: {head['title']}",
        "",
        f"**budget {head['budget']:g}** (x 2M env steps per task: {', '.join(f'{s:,}' for s in np.atleast_1d(steps))} env steps per run) | "
        f"seeds {', '.join(map(str, head['seeds']))} | rows {', '.join(head['rows'])} | train flags `{flags}` | "
        f"commit {head['commit']} on {head['host']}, {head['date']}",
        "",
        f"`{head['command']}`" if head.get("command") else "",
        "",
        f"Final evaluation success ({'/'.join(map(str, head.get('eval_episodes_per_task', [])))} goals x 1 deterministic "
        "episode per task). Each cell: point estimate [95% interval], "
        f"stratified bootstrap over seeds within each task ({head['bootstrap']['reps']:,} replicates, percentile method). "
        "worst-k: the mean of each seed's k lowest tasks, averaged over seeds; IQM: the middle 50% of all seed x task scores. "
        f"Paper: {head['paper']}.",
        "",
        "| row | preset | runs done | " + " | ".join(names[a] for a in AGGREGATES) + " | paper |",
        "|---|---|---|" + "---|" * len(AGGREGATES) + "---|",
    ]
    problems = []
    for r in rows:
        marks = []
        for run in r["runs"]:
            if run["state"] != runs.DONE:
                where = f" at {run['env_steps']:,} env steps" if run["env_steps"] else ""
                marks.append(f"seed {run['seed']} {run['state']}")
                problems.append(f"- `{r['row']}` seed {run['seed']}: **{run['state']}**{where}"
                                + (f": {run['error']}" if run["error"] else "") + f" (`{run['dir']}`)")
        done = f"{r['num_done']}/{len(r['runs'])}" + (f" ({'; '.join(marks)})" if marks else "")
        st = r.get("stats", {})
        cells = [_cell(st[a]) if a in st else "—" for a in AGGREGATES]
        paper = ", ".join(f"{names[a]} {v:.3f}" for a, v in r["paper"].items()) or ""
        lines.append(f"| {r['row']} | `{r['preset']}` | {done} | " + " | ".join(cells) + f" | {paper} |")
    if problems:
        lines += ["", "## Runs not in the statistics", "", *problems]
    tasks = rows[0]["tasks"] if rows else []
    if rows and all(r["tasks"] == tasks for r in rows) and any("per_task_mean" in r for r in rows):
        lines += ["", "## Per task: mean success over the finished seeds", "",
                  "| task | " + " | ".join(r["row"] for r in rows) + " |", "|---|" + "---|" * len(rows)]
        for t in tasks:
            lines.append(f"| {t} | " + " | ".join(f"{r['per_task_mean'][t]:.2f}" if "per_task_mean" in r else "—" for r in rows) + " |")
    lines += ["", "Figures: `worst_k.png` (worst-k for k = 1..T per row), `d1d2.png` (critic and actor D1/D2 over training).", ""]
    return "\n".join(lines)


def plot_worst_k(rows: list[dict], path: Path) -> Path | None:
    """Worst-k success vs k = 1..T, one curve per row with its 95% interval (the paper's Figure 1b)."""
    from toppo_jax.plots import _pyplot

    drawn = [r for r in rows if "stats" in r]
    if not drawn:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, r in enumerate(drawn):
        curve = np.array(r["stats"]["worst_k_curve"])
        k = np.arange(1, len(curve) + 1)
        ax.plot(k, curve[:, 0], marker=".", color=f"C{i % 10}", label=f"{r['row']} (n={r['num_done']})")
        ax.fill_between(k, curve[:, 1], curve[:, 2], color=f"C{i % 10}", alpha=0.15)
    ax.set_xlabel("k (number of worst tasks)")
    ax.set_ylabel("mean success of the k worst tasks")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(True, alpha=0.3)
    ax.set_title("Worst-k success (95% stratified bootstrap interval)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_d1d2(plan: Plan, rows: list[dict], path: Path) -> Path | None:
    """D1/D2 of every row's finished runs on one figure (toppo_jax.plots, one group per row)."""
    from toppo_jax import plots

    dirs, labels = [], []
    for r in rows:
        for run in r["runs"]:
            if run["state"] == runs.DONE:
                dirs.append(run["dir"])
                labels.append(r["row"])
    if not dirs:
        return None
    out, _ = plots.plot_diagnostics_comparison(dirs, path, labels)
    return out


def upload(head: dict, rows: list[dict], figures: Sequence[Path], project: str, log=print) -> None:
    """The table (and figures) to a wandb run of job type `reproduce`; WANDB_MODE as for training (offline unless set)."""
    import wandb

    columns = ["row", "preset", "runs_done", "runs", *[f"{a}{s}" for a in AGGREGATES for s in ("", "_lo", "_hi")]]
    data = []
    for r in rows:
        st = r.get("stats", {})
        values = [v for a in AGGREGATES for v in (st[a] if a in st else (None, None, None))]
        data.append([r["row"], r["preset"], r["num_done"], len(r["runs"]), *values])
    run = wandb.init(project=project, job_type="reproduce", name=f"reproduce-{head['table']}", config=head,
                     mode=os.environ.get("WANDB_MODE", "offline"), dir=head["root"])
    run.log({"table": wandb.Table(columns=columns, data=data),
             **{f"figures/{Path(p).stem}": wandb.Image(str(p)) for p in figures}})
    run.finish()
    log(f"wandb: table logged to run {run.id} of project {project}")


def write_report(plan: Plan, reps: int = stats.REPS, bootstrap_seed: int = 0, wandb_project: str | None = None,
                 log=print, command: str | None = None) -> dict:
    """table.md, table.json, worst_k.png, d1d2.png under the plan's root; returns table.json's content."""
    rows = collect(plan, reps, bootstrap_seed)
    head = header(plan, reps, command) | {"bootstrap_seed": bootstrap_seed}
    plan.root.mkdir(parents=True, exist_ok=True)
    figures = [p for p in (plot_worst_k(rows, plan.root / "worst_k.png"), plot_d1d2(plan, rows, plan.root / "d1d2.png")) if p]
    doc = {**head, "results": rows, "figures": [Path(p).name for p in figures]}
    (plan.root / "table.json").write_text(json.dumps(doc, indent=2))
    text = markdown(head, rows)
    (plan.root / "table.md").write_text(text)
    log(text)
    log(f"wrote {plan.root / 'table.md'}, {plan.root / 'table.json'}" + "".join(f", {p}" for p in figures))
    if wandb_project:
        upload(head, rows, figures, wandb_project, log)
    return doc


# ------------------------------------------------------------------------------------------- CLI


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        hint = " (train flags go after --)" if "unrecognized arguments" in message else ""
        raise ReproduceError(message + hint)


def parse(argv: Sequence[str], tables: dict[str, Table]) -> tuple[argparse.Namespace, list[str]]:
    argv = list(argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    p = _Parser(prog="python -m experiments.reproduce", description=__doc__.split("\n\n")[0])
    p.add_argument("--table", help=f"one of: {', '.join(tables)}")
    p.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1, one run each per row")
    p.add_argument("--budget", type=float, default=1.0, help="fraction of each row's benchmark budget (2M env steps per task)")
    p.add_argument("--rows", default=None, help="comma-separated rows of the table (default: all)")
    p.add_argument("--root", default=None, help="directory of the table's runs (default runs/reproduce/<table>[-budget<F>])")
    p.add_argument("--jobs", type=int, default=1, help="runs trained at a time")
    p.add_argument("--report-only", action="store_true", help="train nothing: write the report from the runs there are")
    p.add_argument("--retry-diverged", action="store_true", help="also rerun runs that diverged (exit code 3)")
    p.add_argument("--dry-run", action="store_true", help="print the train commands and stop")
    p.add_argument("--reps", type=int, default=stats.REPS, help="bootstrap replicates")
    p.add_argument("--bootstrap-seed", type=int, default=0)
    p.add_argument("--wandb", action="store_true", help="log the table and figures to wandb")
    p.add_argument("--wandb-project", default="toppo-jax")
    p.add_argument("--list", action="store_true", help="list the tables and their rows")
    args = p.parse_args(own)
    if args.list:
        return args, extra
    if args.table not in tables:
        raise ReproduceError(f"--table {args.table!r} is not a table; choose one of: {', '.join(tables)}")
    if args.seeds is None:
        raise ReproduceError("--seeds N is required (seeds 0..N-1)")
    if args.jobs < 1:
        raise ReproduceError(f"--jobs {args.jobs} is not valid; give a positive number of runs at a time")
    if args.reps < 100:
        raise ReproduceError(f"--reps {args.reps} is too few for a 95% interval; give at least 100 (rliable uses 50000)")
    return args, extra


def main(argv: Sequence[str] | None = None, *, tables: dict[str, Table] = TABLES, trainer: Sequence[str] = TRAINER,
         task_catalog=None, log: Callable[[str], None] = print) -> int:
    """CLI entry (`tables`, `trainer` and `task_catalog` let tests use a fake trainer)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args, extra = parse(argv, tables)
        if args.list:
            log(describe_tables(tables))
            return 0
        plan = make_plan(tables[args.table], args.seeds, args.budget, extra, args.rows, args.root, task_catalog)
    except ReproduceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    steps = ", ".join(f"{r}: {s:,}" for r, s in plan.steps.items())
    log(f"table {plan.table.name} | budget {plan.budget:g} (env steps per run: {steps}) | seeds {len(plan.seeds)} | "
        f"{len(plan.runs)} runs in {plan.root}" + (f" | train flags {' '.join(plan.extra)}" if plan.extra else ""))
    if args.dry_run:
        for spec in plan.runs:
            log(shlex.join([*trainer, *spec.argv]))
        return 0
    launcher = Launcher(trainer, log)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, launcher.request_stop) for s in (signal.SIGINT, signal.SIGTERM)} if main_thread else {}
    try:
        if not args.report_only:
            run_plan(plan, launcher, args.jobs, args.retry_diverged)
        doc = write_report(plan, args.reps, args.bootstrap_seed, args.wandb_project if args.wandb else None, log,
                           command=shlex.join(["python", "-m", "experiments.reproduce", *argv]))
    except ReproduceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if launcher.stop.is_set():
        return 130
    return 0 if all(run["state"] == runs.DONE for r in doc["results"] for run in r["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
