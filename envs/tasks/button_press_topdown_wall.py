"""button-press-topdown-wall-v3 (metaworld/envs/sawyer_button_press_topdown_wall_v3.py): press the button down, behind a wall.

Official obs, rewards (V2 and V1) and success are line for line those of button-press-topdown-v3 (only the XML, with its wall,
differs), so the task reuses that port.
"""

from __future__ import annotations

import numpy as np

from envs.tasks.button import ButtonPressTopdown


class ButtonPressTopdownWall(ButtonPressTopdown):
    name = "button-press-topdown-wall"

    def constants(self, env):  # restated here so this module's source keys its reset table
        return {"obj_to_target_init": np.asarray(env._obj_to_target_init, np.float64)}

    reward_v1 = ButtonPressTopdown.reward_v1  # the official V1 branch is also topdown's, line for line


TASKS = (ButtonPressTopdownWall(),)
