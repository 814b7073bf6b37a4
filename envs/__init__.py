"""Meta-World v3 on MuJoCo/MJX with pure JAX ``reset``/``step`` (Brax/Playground-style API).

    import envs
    env = envs.make("drawer-open")                       # one task, batched: env.reset(rng, num_envs)
    mt = envs.make_multitask("mt10", envs_per_task=8)    # MT10 in one jittable env
    v1 = envs.make_multitask("mt10", envs_per_task=8, reward_version="v1")  # official V1 reward (default "v2")

Task logic (observation, reward, success) is written once in JAX (``envs/tasks``); the physics
step is a backend (``envs/backends``). ``envs`` never imports ``toppo_jax``.

Observation layout: ``envs.OBS_HAND``, ``OBS_GRIPPER``, ``OBS_OBJ1``, ``OBS_OBJ2``, ``OBS_PREV``,
``OBS_GOAL``, ... (``envs/types.py``). Rendering: ``env.render_model()``, ``env.physics_state(state)``
and ``envs.render.set_state`` (``envs/render.py``).
"""

from envs.registry import MT10, MT50, TASKS, resolve_tasks  # noqa: F401
from envs.sawyer import SawyerEnv, make  # noqa: F401
from envs.tasks.base import DEFAULT_REWARD_VERSION, REWARD_VERSIONS, check_reward_version  # noqa: F401
from envs.multitask import MultiTaskEnv, make_multitask  # noqa: F401
from envs.types import (  # noqa: F401
    OBS_FRAME, OBS_GOAL, OBS_GRIPPER, OBS_HAND, OBS_OBJ1, OBS_OBJ1_POS, OBS_OBJ1_QUAT, OBS_OBJ2, OBS_OBJ2_POS,
    OBS_OBJ2_QUAT, OBS_OBJECTS, OBS_PREV, OBS_SIZE, Frame, Kinematics, State,
)
from envs import render  # noqa: F401,E402
