"""`make bench` pieces: the regression guard, the report files (JSON's markdown table and scaling plot),
and a real (tiny) port timing. Speed itself is never asserted here: it lives in the benchmark."""

import json

import imageio.v2 as imageio

from experiments import bench

RESULT = {
    "date": "2026-11-25", "device": "cpu: (2 cores, x86_64)", "impl": "mujoco", "tasks": "mt10",
    "port_env_steps_per_s": 8000.0, "port_best_batch": 512,
    "port_by_batch": [{"batch": 1, "env_steps_per_s": 800.0}, {"batch": 512, "env_steps_per_s": 8000.0}],
    "official_env_steps_per_s": 1100.0, "official_vector_env_steps_per_s": 800.0, "official_vector_workers": 2,
    "train": {"env_steps_per_s": 350.0, "num_envs": 40}, "train_env_steps_per_s": 350.0,
    "memory": {"host_peak_rss_mb": 2048.0},
}  # fmt: skip


def test_regression_report_flags_only_slowdowns_over_20_percent_on_the_same_device(tmp_path):
    base = tmp_path / "base.json"
    base.write_text(json.dumps(RESULT))
    slower = {**RESULT, "port_env_steps_per_s": 6000.0,
              "port_by_batch": [{"batch": 1, "env_steps_per_s": 790.0}, {"batch": 512, "env_steps_per_s": 6000.0}]}  # fmt: skip
    lines = bench.regression_report(slower, str(base))
    assert any("REGRESSION port batch 512" in line for line in lines)
    assert not any("batch 1:" in line for line in lines)  # 790 vs 800 is within 20%
    assert bench.regression_report(RESULT, str(base))[0].startswith("no regression")
    other = {**RESULT, "device": "gpu:H100"}
    assert "skipped" in bench.regression_report(other, str(base))[0]


def test_regression_report_compares_against_the_official_env_of_the_same_run(tmp_path):
    base = tmp_path / "base.json"
    base.write_text(json.dumps(RESULT))

    def scaled(port: float, official: float) -> dict:
        return {**RESULT, "official_env_steps_per_s": RESULT["official_env_steps_per_s"] * official,
                "port_env_steps_per_s": RESULT["port_env_steps_per_s"] * port,
                "port_by_batch": [{**r, "env_steps_per_s": r["env_steps_per_s"] * port} for r in RESULT["port_by_batch"]],
                "train_env_steps_per_s": RESULT["train_env_steps_per_s"] * port,
                "train": {**RESULT["train"], "env_steps_per_s": RESULT["train"]["env_steps_per_s"] * port}}  # fmt: skip

    # The whole machine 30% slower today: the official env too, so no regression.
    assert bench.regression_report(scaled(0.7, 0.7), str(base))[0].startswith("no regression")
    # The port as fast as before while the machine is 50% faster: the port fell behind.
    lines = bench.regression_report(scaled(1.0, 1.5), str(base))
    assert any("REGRESSION port batch 512" in line and "relative to official" in line for line in lines)
    assert any("REGRESSION train_env_steps_per_s" in line for line in lines)


def test_report_files_table_and_scaling_plot(tmp_path):
    table = bench.markdown_table(RESULT)
    assert "| 512 | 8000 | 7.3x |" in table and "full TOPPO training loop (40 envs)" in table and "peak host RSS" in table
    png = tmp_path / "bench.png"
    bench.scaling_plot(RESULT, png)
    image = imageio.imread(png)
    assert image.shape[0] > 200 and image.shape[1] > 300 and image.std() > 10  # a drawn figure, not a blank canvas


def test_port_timing_on_the_real_port():
    row = bench.port_sps("reach", batch=2, scan=2, impl="mujoco")
    assert row["batch"] == 2 and row["impl"] == "mujoco" and row["env_steps_per_s"] > 0 and row["first_call_s"] > 0
    assert bench.peak_memory()["host_peak_rss_mb"] > 0


def test_gymnasium_vector_env_timing_runs_for_the_port_and_official():
    from experiments import bench

    port = bench.gym_vector_sps("toppo-jax/MT1-reach", steps=3, num_envs=2)
    official = bench.gym_vector_sps("Meta-World/MT10", steps=3, vector_strategy="sync")
    assert port > 0 and official > 0
    result = {"tasks": "mt10", "device": "cpu", "date": "d", "impl": "mujoco", "port_by_batch": [],
              "official_env_steps_per_s": 100.0, "official_vector_env_steps_per_s": 150.0, "official_vector_workers": 2,
              "gym": {"port_env_steps_per_s": 250.0, "official_sync_env_steps_per_s": 90.0, "official_async_env_steps_per_s": 120.0}}
    table = bench.markdown_table(result)
    assert "| Gymnasium vector env, port (one env per task) | 250 | 2.5x |" in table
    assert "official async (one env per task) | 120 | 1.2x |" in table
