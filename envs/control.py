"""Constants of the official Sawyer control law and episode layout (metaworld 3.0.0,
``SawyerXYZEnv``), in one place for the env core (``envs/sawyer.py``), the tasks and every physics
backend (docs/design.md, "Layers").

The control law (``SawyerXYZEnv.set_xyz_action`` + ``do_simulation``): the hand mocap moves by
``clip(a[:3], -1, 1) * ACTION_SCALE`` clipped to the task's mocap box, its orientation is set to
``MOCAP_QUAT``, the two gripper position actuators get ``(a[3], -a[3])``, then ``FRAME_SKIP`` MuJoCo
steps and ``mj_forward``.
"""

from __future__ import annotations

FRAME_SKIP = 5  # SawyerXYZEnv.frame_skip: MuJoCo steps per control step
ACTION_SIZE = 4  # (dx, dy, dz, gripper), each in [-1, 1]
ACTION_DIVISOR = 100.0  # mocap displacement per unit action = 1 / ACTION_DIVISOR metres
ACTION_SCALE = 1.0 / ACTION_DIVISOR  # SawyerXYZEnv.action_scale
MOCAP_QUAT = (1.0, 0.0, 1.0, 0.0)  # set_xyz_action: the hand mocap's quaternion (w, x, y, z), as official (unnormalised)
GRIPPER_DISTANCE_SCALE = 0.1  # _get_curr_obs_combined_no_goal: gripper obs = clip(|right - left claw| / 0.1, 0, 1)
MAX_PATH_LENGTH = 500  # SawyerXYZEnv.max_path_length: episodes truncate after this many control steps
NUM_GOALS = 50  # goals per task in the official MT10 / MT50 tables
