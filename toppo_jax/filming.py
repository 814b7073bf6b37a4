"""Videos of the deterministic policy on the MuJoCo port, rendered with MuJoCo's renderer.

The policy (`policy.make_policy`, tanh(mean)) runs on the port (`envs.SawyerEnv` of the task, in eval
mode on goal 0 of the run's goal table, with the run's one-hot task id and observation normaliser)
inside one jitted scan that records the physics state of every step. The frames are drawn from those
states through the env's public rendering API (`SawyerEnv.render_model`, `SawyerEnv.physics_state`,
`envs.render.set_state`: the port's model of the task, its state vector, the goal site placed at the
observed goal the way official `step` does). A bar along the top turns green once the episode
has succeeded. Every 2nd control step is filmed (40 fps: real time). Files go to
DIR/videos/<task>_<env_steps>.mp4 (H.264 through imageio-ffmpeg). The CLI is `toppo_jax/video.py`.

Rendering runs in a child process, because MuJoCo fixes its OpenGL platform (`MUJOCO_GL`) when it is
first imported and a GL fault must not take training down. `headless_gl()` probes, in a child each,
`$MUJOCO_GL` if set, then `egl` (GPU, or Mesa's software EGL on CPU) and `osmesa`; if none renders,
videos are skipped with the reason. Only the `mujoco` physics backend is supported (its state is the
MuJoCo state vector); the fake test env and MJX backends are skipped with a message.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from toppo_jax.config import ConfigError

VIDEOS = "videos"
GL_CANDIDATES = ("egl", "osmesa")
DEFAULT_CAMERA = "free"  # a free camera over the table; Meta-World's "corner" camera renders upside down
FREE_CAMERA = {"lookat": (0.0, 0.65, 0.1), "distance": 1.3, "azimuth": 145.0, "elevation": -30.0}
DEFAULT_SIZE = 320  # pixels, square; a multiple of 16 so H.264 needs no resize
CONTROL_FPS = 80  # Meta-World's render_fps: one control step is 12.5 ms
DEFAULT_EVERY = 2  # film every 2nd control step (40 fps, real time): halves software-rendering time

_PROBE = """
import mujoco
m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><light pos="0 0 2"/><geom size=".1"/></worldbody></mujoco>')
d = mujoco.MjData(m)
mujoco.mj_forward(m, d)
r = mujoco.Renderer(m, 16, 16)
r.update_scene(d)
assert r.render().shape == (16, 16, 3)
r.close()
"""


class VideoUnavailable(RuntimeError):
    """Videos cannot be made here (no headless OpenGL, no MuJoCo models, another physics backend)."""


def _gl_env(gl: str) -> dict[str, str]:
    env = dict(os.environ, MUJOCO_GL=gl)
    if gl in ("egl", "osmesa"):
        env["PYOPENGL_PLATFORM"] = gl
    else:
        env.pop("PYOPENGL_PLATFORM", None)
    return env


def _run_child(args, env, timeout):
    with warnings.catch_warnings():
        # JAX warns on every fork; subprocess forks only to exec at once, which is safe.
        warnings.filterwarnings("ignore", message="os.fork\\(\\) was called")
        return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)


@functools.lru_cache(maxsize=None)
def headless_gl() -> tuple[str | None, str]:
    """(the first MUJOCO_GL value that renders in a fresh process, or None; why the others failed)."""
    candidates = [os.environ["MUJOCO_GL"]] if os.environ.get("MUJOCO_GL") else []
    candidates += [gl for gl in GL_CANDIDATES if gl not in candidates]
    reasons = []
    for gl in candidates:
        try:
            result = _run_child([sys.executable, "-c", _PROBE], env=_gl_env(gl), timeout=120)
        except subprocess.TimeoutExpired:
            reasons.append(f"{gl}: timed out")
            continue
        if result.returncode == 0:
            return gl, ""
        last = (result.stderr.strip().splitlines() or ["exit code %d" % result.returncode])[-1]
        reasons.append(f"{gl}: {last[:160]}")
    return None, "no headless OpenGL for MuJoCo (" + "; ".join(reasons) + ")"


# ----------------------------------------------------------------------------------- rollout


def policy_rollout(task: str, task_names: Sequence[str], seed: int, impl: str, actor_apply, actor_params, obs_stats,
                   steps: int | None = None, goal: int = 0):
    """Run the deterministic policy on the port for one episode of `task`.

    Returns (model, states float64 [steps, nstate], goals float32 [steps, 3], success [steps]):
    the state, observed goal and sticky episode success before each step (frame 0 is the reset state).
    """
    import jax
    import jax.numpy as jnp

    from envs import OBS_GOAL
    from envs.registry import benchmark_for
    from envs.sawyer import SawyerEnv
    from toppo_jax.policy import make_policy, with_task_id

    task_names = list(task_names)
    env = SawyerEnv(task, seed=seed, benchmark=benchmark_for(tuple(task_names)), impl=impl, eval_mode=True)
    steps = env.max_path_length if steps is None else int(steps)
    act = make_policy(actor_apply, stochastic=False)
    index = task_names.index(task)

    def step(state, _):
        obs = with_task_id(state.obs, index, len(task_names))
        record = (jax.tree.map(lambda x: x[0], state.data), state.obs[0, OBS_GOAL], state.metrics["success"][0])
        return env.step(state, act(actor_params, obs_stats, obs).action), record

    @jax.jit
    def run(state):
        return jax.lax.scan(step, state, None, length=steps)[1]

    state = env.reset(jax.random.PRNGKey(0), 1, goals=jnp.array([goal]))
    data, goals, success = jax.device_get(run(state))
    return env.render_model(), env.physics_state(data), np.asarray(goals), np.asarray(success)


# ---------------------------------------------------------------------------------- rendering


def _render_job(job_path: str) -> None:
    """Child process: draw the frames of a job file and write the mp4 (MUJOCO_GL is already set)."""
    import imageio
    import mujoco

    from envs.render import set_state

    job = dict(np.load(job_path, allow_pickle=False))
    model = mujoco.MjModel.from_binary_path(str(job["model_path"]))
    data = mujoco.MjData(model)
    size = int(job["size"])
    camera = str(job["camera"])
    if camera == "free" or mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera) < 0:
        camera = mujoco.MjvCamera()
        camera.type = mujoco.mjtCamera.mjCAMERA_FREE
        camera.lookat[:] = FREE_CAMERA["lookat"]
        camera.distance, camera.azimuth, camera.elevation = FREE_CAMERA["distance"], FREE_CAMERA["azimuth"], FREE_CAMERA["elevation"]
    # No multisampling, shadows or reflections: 7x faster under software GL (Mesa llvmpipe), still clear.
    model.vis.quality.offsamples = 0
    renderer = mujoco.Renderer(model, size, size)
    try:
        with imageio.get_writer(str(job["path"]), fps=int(job["fps"]), codec="libx264", macro_block_size=16) as writer:
            for state, goal, success in zip(job["states"], job["goals"], job["success"]):
                set_state(model, data, state, goal=goal)
                renderer.update_scene(data, camera=camera)
                renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
                renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
                frame = renderer.render().copy()
                frame[: max(2, size // 60)] = (40, 200, 40) if success > 0 else (200, 60, 40)
                writer.append_data(frame)
    finally:
        renderer.close()


def render_mp4(model, states: np.ndarray, goals: np.ndarray, success: np.ndarray, path: str | Path, *,
               size: int = DEFAULT_SIZE, camera: str = DEFAULT_CAMERA, every: int = DEFAULT_EVERY) -> Path:
    """Render every `every`-th state to an mp4 (real time) in a child process with a working headless
    GL; VideoUnavailable if there is none."""
    import mujoco

    gl, reason = headless_gl()
    if gl is None:
        raise VideoUnavailable(reason)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        model_path = os.path.join(tmp, "model.mjb")
        mujoco.mj_saveModel(model, model_path)
        job_path = os.path.join(tmp, "job.npz")
        np.savez(job_path, model_path=model_path, path=str(path.absolute()) + ".tmp.mp4", states=states[::every],
                 goals=goals[::every], success=success[::every], size=size, camera=camera,
                 fps=max(1, round(CONTROL_FPS / every)))
        code = f"from toppo_jax.filming import _render_job; _render_job({job_path!r})"
        root = str(Path(__file__).resolve().parents[1])
        env = _gl_env(gl)
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        result = _run_child([sys.executable, "-c", code], env=env, timeout=1800)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or [f"exit code {result.returncode}"])[-1]
            raise RuntimeError(f"rendering {path.name} failed with MUJOCO_GL={gl}: {last}")
    os.replace(str(path) + ".tmp.mp4", path)  # a half-written video is never visible under its name
    return path


def record(task_names: Sequence[str], film: Sequence[str], *, seed: int, impl: str, actor_apply, actor_params, obs_stats,
           out_dir: str | Path, env_steps: int, steps: int | None = None, size: int = DEFAULT_SIZE,
           camera: str = DEFAULT_CAMERA, every: int = DEFAULT_EVERY) -> list[Path]:
    """One mp4 per task in `film`: DIR/videos/<task>_<env_steps>.mp4. VideoUnavailable if not possible here."""
    gl, reason = headless_gl()
    if gl is None:
        raise VideoUnavailable(reason)
    paths = []
    for task in film:
        model, states, goals, success = policy_rollout(
            task, task_names, seed, impl, actor_apply, actor_params, obs_stats, steps=steps
        )
        path = Path(out_dir) / f"{task}_{int(env_steps)}.mp4"
        paths.append(render_mp4(model, states, goals, success, path, size=size, camera=camera, every=every))
    return paths


def pick_tasks(task_names: Sequence[str], eval_line: dict | None, requested: Sequence[str] = ()) -> list[str]:
    """The requested tasks, else the worst and the best task of the last evaluation, else the first task."""
    if requested:
        return list(requested)
    if eval_line:
        scores = [(eval_line.get(f"eval/success/{t}", 0.0), i, t) for i, t in enumerate(task_names)]
        worst, best = min(scores)[2], max(scores)[2]
        return [worst] if worst == best else [worst, best]
    return [task_names[0]]


def resolve_video_tasks(requested: Sequence[str], task_names: Sequence[str], flag: str = "--video-tasks") -> tuple[str, ...]:
    """Canonical names of the tasks to film (a -v3 suffix is dropped); each must be one of the run's tasks."""
    out = []
    for raw in requested:
        for name in (n.strip().removesuffix("-v3") for n in raw.split(",") if n.strip()):
            if name not in task_names:
                raise ConfigError(f"{flag} {name!r} is not a task of this run; valid: {', '.join(task_names)}")
            out.append(name)
    return tuple(out)
