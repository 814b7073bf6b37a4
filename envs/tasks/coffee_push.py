"""coffee-push-v3 (metaworld/envs/sawyer_coffee_push_v3.py): push the mug under the coffee machine.

Official obs, V2 reward and success are line for line those of coffee-pull-v3 (only the reset differs: the machine
sits behind the goal instead of the mug), so the task reuses that port.
"""

from __future__ import annotations

from envs.tasks.coffee_pull import _CoffeeMug


class CoffeePush(_CoffeeMug):
    name = "coffee-push"


TASKS = (CoffeePush(),)
