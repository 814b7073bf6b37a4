"""Meta-World v3 on MuJoCo/MJX with pure JAX ``reset``/``step`` (Brax/Playground-style API).

    import envs
    env = envs.make("drawer-open")                       # one task, batched: env.reset(rng, num_envs)
    mt = envs.make_multitask("mt10", envs_per_task=8)    # MT10 in one jittable env

Task logic (observation, reward, success) is written once in JAX (``envs/tasks``); the physics
step is a backend (``envs/backends``). ``envs`` never imports ``toppo_jax``.
"""

from envs.registry import MT10, MT50, TASKS, resolve_tasks  # noqa: F401
from envs.sawyer import SawyerEnv, make  # noqa: F401
from envs.multitask import MultiTaskEnv, make_multitask  # noqa: F401
from envs.types import Frame, Kinematics, State  # noqa: F401
