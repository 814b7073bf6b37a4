"""experiments.reproduce and experiments.stats: the aggregates and the stratified bootstrap against
hand-computed values, the report from finished/failed runs written here, and the harness end to end
with the trainer CLI on the fake env (tests/fake_train_cli.py) and with a trainer that fails."""

import json
import sys
from pathlib import Path

import conftest_fake_env as fake
import numpy as np
import pytest
import scipy.stats

from experiments import reproduce, runs, stats
from toppo_jax import plots, policy, presets
from toppo_jax.combiners import COMBINERS

TESTS = Path(__file__).resolve().parent
CATALOG = (fake.GROUPS, fake.TASKS)
FAKE_TRAINER = (sys.executable, str(TESTS / "fake_train_cli.py"))
TINY = ("--envs-per-task", "4", "--rollout-length", "10", "--iterations-per-chunk", "2", "--num-epochs", "1",
        "--num-minibatches", "4", "--actor-hidden", "32", "32", "--critic-hidden", "32", "32", "--eval-episodes", "5",
        "--eval-every", "0", "--no-wandb", "--no-videos")  # fmt: skip
# fake4: 4 tasks -> 8M env steps at budget 1; 4e-5 of it is 320 env steps = 4 iterations of 80, 2 chunks.
BUDGET = 4e-5
FAKE_TABLE = reproduce.Table("fake", "fake table", (
    reproduce.Row("mtppo", "mtppo", ("--tasks", "fake4"), paper=(("mean", 0.5),)),
    reproduce.Row("popart_ln", "popart_ln", ("--tasks", "fake4")),
))  # fmt: skip
TABLES = {"fake": FAKE_TABLE}


# ------------------------------------------------------------------------------------ aggregates

# 2 seeds x 4 tasks. Sorted rows: [0, .5, .5, 1] and [0, .5, 1, 1].
SCORES = np.array([[0.0, 1.0, 0.5, 0.5], [1.0, 0.0, 0.5, 1.0]])


def test_aggregates_by_hand():
    got = stats.aggregates(SCORES)
    assert got["mean"] == pytest.approx(4.5 / 8)
    assert got["worst_1"] == pytest.approx(0.0)
    assert got["worst_3"] == pytest.approx((1 / 3 + 1.5 / 3) / 2)  # per seed first, then the mean over seeds
    assert "worst_5" not in got and "worst_10" not in got  # k > number of tasks
    assert got["iqm"] == pytest.approx(np.mean([0.5, 0.5, 0.5, 1.0]))  # sorted 0 0 .5 .5 .5 1 1 1, drop 2 each end
    np.testing.assert_allclose(stats.worst_k_curve(SCORES), [0.0, 0.25, 5 / 12, 4.5 / 8])


def test_aggregates_agree_with_the_trainer_scipy_and_plots():
    rng = np.random.default_rng(3)
    for runs_, tasks in ((3, 10), (5, 7), (2, 50)):
        scores = rng.integers(0, 51, size=(runs_, tasks)) / 50.0
        got = stats.aggregates(scores)
        for k in (1, 3, 5, 10):
            if k <= tasks:  # the trainer's worst-k of each seed, averaged over seeds
                assert got[f"worst_{k}"] == pytest.approx(np.mean([policy.worst_k(s, k) for s in scores]))
        assert got["iqm"] == pytest.approx(scipy.stats.trim_mean(scores.ravel(), 0.25))
        assert got["iqm"] == pytest.approx(plots.iqm(scores))
        assert stats.worst_k_curve(scores)[-1] == pytest.approx(scores.mean())


# ------------------------------------------------------------------------------------- bootstrap


def test_resampling_stays_within_each_task():
    scores = np.array([[0.0, 10.0, 20.0], [1.0, 11.0, 21.0], [2.0, 12.0, 22.0]])
    sample = stats.stratified_resample(scores, 500, np.random.default_rng(0))
    assert sample.shape == (500, 3, 3)
    for task in range(3):
        assert set(np.unique(sample[:, :, task])) == set(scores[:, task])  # every run of the task is drawn, no other


def test_tasks_are_resampled_independently():
    """Seeds [0, 0] and [1, 1]: with runs drawn per task the mean is 0 with probability (1/4)^2 = 1/16
    (both tasks draw seed 0 twice); drawing whole runs would give 1/4. Exact distribution of the mean:
    0 and 1 with 1/16, 1/4 and 3/4 with 4/16, 1/2 with 6/16."""
    scores = np.array([[0.0, 0.0], [1.0, 1.0]])
    means = stats.aggregates(stats.stratified_resample(scores, 40_000, np.random.default_rng(1)))["mean"]
    for value, p in ((0.0, 1 / 16), (0.25, 4 / 16), (0.5, 6 / 16), (0.75, 4 / 16), (1.0, 1 / 16)):
        assert np.mean(np.isclose(means, value)) == pytest.approx(p, abs=0.01)


def test_intervals_match_rliable():
    """rliable 1.2.0's get_interval_estimates (50,000 reps, percentile) on TOPPO's final MT10 scores of seeds 0 and 1
    (docs/results/mt10-toppo-vs-mtppo-cpu) and on a random 5 x 50 matrix; the same up to Monte Carlo error."""
    toppo = np.array([[0.98, 0.80, 0.26, 1.00, 1.00, 1.00, 1.00, 0.78, 0.52, 1.00],
                      [1.00, 0.56, 0.66, 0.84, 0.52, 1.00, 1.00, 0.78, 0.98, 1.00]])  # fmt: skip
    synthetic = np.random.default_rng(7).integers(0, 51, size=(5, 50)) / 50.0
    rliable = {
        "toppo": {"mean": (0.834, 0.778, 0.89), "worst_1": (0.39, 0.26, 0.59), "worst_3": (0.55, 0.44, 0.7),
                  "worst_5": (0.67, 0.568, 0.782), "iqm": (0.916, 0.832, 0.958)},
        "synthetic": {"mean": (0.5276, 0.4946, 0.5603), "worst_1": (0.004, 0.0, 0.024), "worst_3": (0.016, 0.008, 0.044),
                      "worst_10": (0.0956, 0.0696, 0.1376), "iqm": (0.5408, 0.4957, 0.5851)},
    }  # fmt: skip
    for name, scores in (("toppo", toppo), ("synthetic", synthetic)):
        ours = stats.interval_estimates(scores, reps=50_000, seed=1)
        for stat, expected in rliable[name].items():
            np.testing.assert_allclose(ours[stat], expected, atol=0.004, err_msg=f"{name} {stat}")


def test_intervals_by_hand():
    # One task, seeds 0 and 1: the mean of a replicate is 0 (1/4), 0.5 (1/2) or 1 (1/4), so the 2.5th and
    # 97.5th percentiles are 0 and 1. Worst-1 = mean here; IQM of two values = their mean.
    est = stats.interval_estimates(np.array([[0.0], [1.0]]), reps=4_000)
    assert est["mean"] == (0.5, 0.0, 1.0) and est["worst_1"] == (0.5, 0.0, 1.0)
    # One seed: every replicate is the data, the interval is the point.
    est = stats.interval_estimates(SCORES[:1], reps=1_000)
    assert est["worst_3"] == (pytest.approx(1 / 3),) * 3 and est["iqm"] == (0.5, 0.5, 0.5)
    assert [c[0] for c in est["worst_k_curve"]] == pytest.approx([0.0, 0.25, 1 / 3, 0.5])
    # Tasks where every seed agrees do not widen anything: only task 0 varies (0 or 1 of 4 tasks -> mean 0.25 +- 0.25).
    est = stats.interval_estimates(np.array([[0.0, 1.0, 1.0, 0.5], [1.0, 1.0, 1.0, 0.5]]), reps=4_000)
    assert est["mean"] == (pytest.approx(0.75), pytest.approx(0.625), pytest.approx(0.875))
    assert stats.percentile_interval(np.arange(101.0)) == (pytest.approx(2.5), pytest.approx(97.5))
    assert stats.interval_estimates(SCORES, reps=2_000, seed=5) == stats.interval_estimates(SCORES, reps=2_000, seed=5)


# ------------------------------------------------------------------------------------------ tables


def test_every_table_row_is_a_preset():
    assert reproduce.COMBINER_NAMES == tuple(COMBINERS)
    assert set(reproduce.TABLES) == {"mt10", "mt50", "mt50-v1", "ablations-mt10", "ablations-mt50", "combiners-mt10"}
    assert len(reproduce.TABLES["combiners-mt10"].rows) == 16 and len(reproduce.TABLES["ablations-mt50"].rows) == 7
    for table in reproduce.TABLES.values():
        for row in table.rows:
            presets.get_preset(row.preset)  # raises on an unknown preset
            assert row.name in presets.METHODS


def test_plan_names_runs_and_scales_steps_by_the_budget():
    plan = reproduce.make_plan(reproduce.TABLES["ablations-mt10"], 2, 0.15, ["--no-videos"], "toppo,mtppo-mt10")
    assert [r.name for r in plan.rows] == ["mtppo", "toppo"]  # the table's order, by name or by preset
    assert plan.root == Path("runs/reproduce/ablations-mt10-budget0.15")
    assert [(s.row, s.seed, s.out) for s in plan.runs] == [
        (row, seed, runs.seed_run(plan.root, row, seed)) for seed in (0, 1) for row in ("mtppo", "toppo")]
    assert plan.steps == {"mtppo": 3_000_000, "toppo": 3_000_000}  # 0.15 x 2M x 10 tasks
    assert plan.runs[3].argv == ("--preset", "toppo-mt10", "--no-videos", "--seed", "1", "--total-env-steps", "3000000",
                                 "--out", "runs/reproduce/ablations-mt10-budget0.15/toppo/seed1")  # fmt: skip
    assert reproduce.make_plan(reproduce.TABLES["mt50"], 1, 1.0).steps == {"toppo": 100_000_000, "mtppo": 100_000_000}


@pytest.mark.parametrize("argv, message", [
    (["--table", "mt11", "--seeds", "1"], "--table 'mt11' is not a table; choose one of: mt10, mt50, mt50-v1"),
    (["--table", "mt10", "--seeds", "0"], "--seeds 0 is not valid"),
    (["--table", "mt10", "--seeds", "1", "--budget", "-1"], "--budget -1 is not valid"),
    (["--table", "mt10", "--seeds", "1", "--rows", "toppo,ppo"], "--rows 'ppo' is not a row of table mt10; valid: toppo, mtppo"),
    (["--table", "mt10", "--seeds", "1", "--", "--seed", "3"], "train flag --seed cannot be passed through: use --seeds N"),
    (["--table", "mt10", "--seeds", "1", "--", "--out=x"], "train flag --out cannot be passed through"),
    (["--table", "mt10", "--seeds", "1", "--", "--envs-per-task", "x"], "row toppo (--preset toppo-mt10 --envs-per-task x): Error parsing"),
    (["--table", "mt10", "--seeds", "1", "--envs-per-task", "8"], "unrecognized arguments: --envs-per-task 8 (train flags go after --)"),
])  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert reproduce.main(["--dry-run", *argv]) == 2  # --dry-run: nothing trains even if the input were accepted
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_a_flag_the_trainer_refuses_names_what_the_table_needs(tmp_path, capsys):
    table = reproduce.Table("v9", "t", FAKE_TABLE.rows, flags=("--reward-version-9", "x"), needs="V9 rewards (--reward-version-9 x)")
    argv = ["--table", "v9", "--seeds", "1", "--root", str(tmp_path), "--dry-run"]  # never trains, whatever happens
    assert reproduce.main(argv, tables={"v9": table}, task_catalog=CATALOG) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: table v9 needs V9 rewards (--reward-version-9 x), which this toppo_jax.train does not accept yet")
    assert "--reward-version-9" in err and err.count("\n") == 1
    # The real mt50-v1: planned once the trainer has the flag, until then the same one error.
    try:
        plan = reproduce.make_plan(reproduce.TABLES["mt50-v1"], 1, 1.0)
        assert plan.runs[0].argv[2:4] == ("--reward-version", "v1")
    except reproduce.ReproduceError as error:
        assert str(error).startswith("table mt50-v1 needs V1 rewards (the train flag --reward-version v1), which")


# ------------------------------------------------------------------------- report from fake runs


def _write_run(out: Path, seed: int, per_task: dict | None, steps: list[int]) -> None:
    """A run directory as the trainer leaves it: metrics lines at `steps`, the last with an evaluation."""
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, s in enumerate(steps):
        line = {"seed": seed, "env_steps": s, "train/d1": 1.0 + 0.1 * i + seed, "train/d2": 0.01 * i}
        if per_task is not None and i == len(steps) - 1:
            line.update(policy.summarize(np.array(list(per_task.values())), list(per_task), (1, 3)))
        lines.append(line)
    (out / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (out / "config.json").write_text(json.dumps({"tasks": list(per_task or {})}))


def test_report_from_finished_and_failed_runs(tmp_path):
    plan = reproduce.make_plan(FAKE_TABLE, 2, BUDGET, root=tmp_path, task_catalog=CATALOG)
    tasks = fake.TASKS[:4]
    a0, a1 = [0.0, 1.0, 0.5, 0.5], [1.0, 0.0, 0.5, 1.0]  # SCORES
    _write_run(runs.seed_run(tmp_path, "mtppo", 0), 0, dict(zip(tasks, a0)), [160, 320])
    _write_run(runs.seed_run(tmp_path, "mtppo", 1), 1, dict(zip(tasks, a1)), [160, 320])
    _write_run(runs.seed_run(tmp_path, "popart_ln", 0), 0, dict(zip(tasks, [1.0, 1.0, 0.0, 1.0])), [160, 320])
    diverged = runs.seed_run(tmp_path, "popart_ln", 1)
    _write_run(diverged, 1, None, [160])  # no final evaluation
    runs.write_status(diverged, {"state": "diverged", "error": "training diverged: seed 1: non-finite actor loss", "exit_code": 3})
    doc = reproduce.write_report(plan, reps=2_000, log=lambda *_: None)
    a, b = doc["results"]
    assert a["num_done"] == 2 and a["stats"]["mean"][0] == pytest.approx(4.5 / 8)
    assert a["stats"]["worst_3"][0] == pytest.approx(5 / 12) and a["stats"]["iqm"][0] == pytest.approx(0.625)
    assert a["per_task_mean"] == dict(zip(tasks, [0.5, 0.5, 0.5, 0.75]))
    assert b["num_done"] == 1 and b["stats"]["mean"] == (0.75, 0.75, 0.75)  # over seed 0 only
    assert [(r["seed"], r["state"], r["env_steps"]) for r in b["runs"]] == [(0, "done", 320), (1, "diverged", None)]
    assert doc["budget"] == BUDGET and doc["env_steps_per_run"] == 320 and doc["seeds"] == [0, 1]
    text = (tmp_path / "table.md").read_text()
    assert "**budget 4e-05**" in text and "320 env steps per run" in text and "(50 goals x 1 deterministic episode per task)" in text
    assert "| mtppo | `mtppo` | 2/2 | 0.562 [" in text and "| mean success 0.500 |" in text
    assert "| popart_ln | `popart_ln` | 1/2 (seed 1 diverged) | 0.750 [0.750, 0.750] |" in text
    assert "- `popart_ln` seed 1: **diverged**: training diverged: seed 1: non-finite actor loss" in text
    assert (tmp_path / "worst_k.png").stat().st_size > 10_000 and (tmp_path / "d1d2.png").stat().st_size > 10_000
    d1d2 = json.loads((tmp_path / "d1d2.json").read_text())
    assert d1d2["mtppo"]["train/d1"] == pytest.approx(np.median([1.0, 1.1, 2.0, 2.1]))  # only finished runs
    assert json.loads((tmp_path / "table.json").read_text())["results"][1]["runs"][1]["error"].startswith("training diverged")


def test_report_reproduces_the_committed_mt10_results(tmp_path):
    """docs/results/mt10-toppo-vs-mtppo-cpu (3M env steps, seeds 0 and 1) laid out as a table: the README's
    figures over both seeds (TOPPO 0.834 / worst-3 0.55, MT-PPO 0.694 / 0.11)."""
    src = TESTS.parent / "docs" / "results" / "mt10-toppo-vs-mtppo-cpu"
    for row, dirs in (("toppo", ("toppo", "toppo-seed1")), ("mtppo", ("mtppo", "mtppo-seed1"))):
        for seed, name in enumerate(dirs):
            run = runs.seed_run(tmp_path, row, seed)
            run.parent.mkdir(parents=True, exist_ok=True)
            run.symlink_to(src / name)
    plan = reproduce.make_plan(reproduce.TABLES["mt10"], 2, 0.15, root=tmp_path)
    rows = {r["row"]: r for r in reproduce.collect(plan, reps=1_000)}
    assert rows["toppo"]["stats"]["mean"][0] == pytest.approx(0.834) and rows["toppo"]["stats"]["worst_3"][0] == pytest.approx(0.55)
    assert rows["mtppo"]["stats"]["mean"][0] == pytest.approx(0.694) and rows["mtppo"]["stats"]["worst_3"][0] == pytest.approx(0.1133, abs=1e-4)
    assert rows["toppo"]["paper"] == {"mean": 0.972}


def test_wandb_upload_logs_the_table(tmp_path, monkeypatch):
    logged = {}

    class Run:
        id = "r1"

        def log(self, data):
            logged.update(data)

        def finish(self):
            logged["finished"] = True

    class FakeWandb:
        Table = staticmethod(lambda columns, data: {"columns": columns, "data": data})
        Image = staticmethod(lambda path: path)
        init = staticmethod(lambda **kw: logged.setdefault("init", kw) and Run())

    monkeypatch.setitem(sys.modules, "wandb", FakeWandb)
    rows = [{"row": "a", "preset": "a-mt10", "num_done": 1, "runs": [{}], "stats": {k: (0.5, 0.4, 0.6) for k in reproduce.AGGREGATES}}]
    reproduce.upload({"table": "t", "root": str(tmp_path)}, rows, [tmp_path / "worst_k.png"], "proj", log=lambda *_: None)
    assert logged["init"]["project"] == "proj" and logged["init"]["job_type"] == "reproduce" and logged["finished"]
    assert logged["table"]["columns"][:5] == ["row", "preset", "runs_done", "runs", "mean"]
    assert logged["table"]["data"][0][:7] == ["a", "a-mt10", 1, 1, 0.5, 0.4, 0.6]
    assert logged["figures/worst_k"] == str(tmp_path / "worst_k.png")


# ------------------------------------------------------------------------------------ end to end


def test_failed_runs_are_marked_and_diverged_ones_not_retried(tmp_path):
    """A trainer that fails: exit 2 is a failed run (retried on rerun), exit 3 a diverged one (kept)."""
    script = tmp_path / "trainer.py"
    script.write_text("import sys\nprint('compiling...')\nprint('error: boom at seed ' + sys.argv[sys.argv.index('--seed') + 1], "
                      "file=sys.stderr)\nsys.exit(2 if sys.argv[sys.argv.index('--preset') + 1] == 'mtppo' else 3)\n")  # fmt: skip
    root = tmp_path / "root"
    argv = ["--table", "fake", "--seeds", "2", "--budget", str(BUDGET), "--root", str(root), "--reps", "200", "--", *TINY]
    out = []
    kw = dict(tables=TABLES, trainer=(sys.executable, str(script)), task_catalog=CATALOG, log=out.append)
    assert reproduce.main([*argv[:2], "--jobs", "2", *argv[2:]], **kw) == 1  # some runs are not done
    table = json.loads((root / "table.json").read_text())
    assert table["command"].startswith("python -m experiments.reproduce --table fake --jobs 2 --seeds 2")
    states = [(r["row"], run["seed"], run["state"], run["error"]) for r in table["results"] for run in r["runs"]]
    assert states == [("mtppo", 0, "failed", "boom at seed 0"), ("mtppo", 1, "failed", "boom at seed 1"),
                      ("popart_ln", 0, "diverged", "boom at seed 0"), ("popart_ln", 1, "diverged", "boom at seed 1")]  # fmt: skip
    status = json.loads((runs.seed_run(root, "popart_ln", 1) / runs.STATUS_FILE).read_text())
    assert status["exit_code"] == 3 and "--seed 1" in status["command"]
    assert "compiling..." in (runs.seed_run(root, "mtppo", 0) / "train.log").read_text()
    assert "| mtppo | `mtppo` | 0/2 (seed 0 failed; seed 1 failed) | — |" in (root / "table.md").read_text()
    out.clear()
    assert reproduce.main(argv, **kw) == 1
    assert sum(line.startswith("skip popart_ln") and "diverged (boom" in line for line in out) == 2
    assert sum(line.startswith("[") and "training to" in line for line in out) == 2  # the two failed runs again
    log = (runs.seed_run(root, "mtppo", 0) / "train.log").read_text()
    assert log.count("=== ") == 2 and log.count("boom at seed 0") == 2
    assert (runs.seed_run(root, "popart_ln", 0) / "train.log").read_text().count("=== ") == 1


def test_cli_trains_skips_finished_runs_and_resumes_to_a_larger_budget(tmp_path):
    """Through the trainer CLI on the fake env (one row, 320 env steps = one chunk), twice, then at twice the budget."""
    root = tmp_path / "table"
    argv = ["--table", "fake", "--seeds", "1", "--rows", "mtppo", "--root", str(root), "--reps", "500", "--", *TINY]
    out = []
    kw = dict(tables=TABLES, trainer=FAKE_TRAINER, task_catalog=CATALOG, log=out.append)
    assert reproduce.main([*argv[:4], "--budget", str(BUDGET), *argv[4:]], **kw) == 0, "\n".join(out)
    table = json.loads((root / "table.json").read_text())
    assert table["train_flags"] == list(TINY) and table["budget"] == BUDGET and table["rows"] == ["mtppo"]
    (r,) = table["results"]
    run = r["runs"][0]
    assert run["state"] == "done" and run["env_steps"] == 320 and run["dir"] == str(runs.seed_run(root, "mtppo", 0))
    lines = [json.loads(x) for x in (Path(run["dir"]) / "metrics.jsonl").read_text().splitlines()]
    assert r["stats"]["mean"][0] == pytest.approx(lines[-1]["eval/success_mean"])  # one seed: the logged value
    assert r["stats"]["worst_1"][0] == pytest.approx(lines[-1]["eval/success_worst_1"])
    assert (root / "worst_k.png").exists() and (root / "d1d2.png").exists()
    # Rerun: nothing trains.
    out.clear()
    assert reproduce.main([*argv[:4], "--budget", str(BUDGET), *argv[4:]], **kw) == 0
    assert [line for line in out if line.startswith(("skip", "["))] == [f"skip mtppo seed 0: done in {runs.seed_run(root, 'mtppo', 0)}"]
    # Twice the budget on the same root: the run resumes from its checkpoint to 640 env steps.
    out.clear()
    assert reproduce.main([*argv[:4], "--budget", str(2 * BUDGET), *argv[4:]], **kw) == 0, "\n".join(out)
    log = (runs.seed_run(root, "mtppo", 0) / "train.log").read_text()
    assert log.count("=== ") == 2 and "resuming" in log
    assert [json.loads(x)["env_steps"] for x in (Path(run["dir"]) / "metrics.jsonl").read_text().splitlines()] == [320, 640]
    assert json.loads((root / "table.json").read_text())["results"][0]["runs"][0]["env_steps"] == 640
