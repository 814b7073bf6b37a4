"""coffee-button-v3 (metaworld/envs/sawyer_coffee_button_v3.py): push the coffee machine's button in along +y."""

from __future__ import annotations

import jax.numpy as jnp

from envs import rewards
from envs.tasks.base import Task, info, tcp_center

MAX_DIST = 0.03  # official self.max_dist


class CoffeeButton(Task):
    name = "coffee-button"
    frames = ("site:buttonStart",)

    def objects(self, kin, c):
        return kin.pos("site:buttonStart"), jnp.array([1.0, 0.0, 0.0, 0.0])

    def evaluate(self, obs, action, kin, c):
        obj, tcp = obs[4:7], tcp_center(kin)
        tcp_to_obj = jnp.linalg.norm(obj - tcp)
        tcp_to_obj_init = jnp.linalg.norm(obj - c["init_tcp"])
        obj_to_target = jnp.abs(c["target_pos"][1] - obj[1])
        tcp_closed = jnp.maximum(obs[3], 0.0)  # official name; obs[3] is how far the fingers are apart
        near_button = rewards.tolerance(tcp_to_obj, bounds=(0, 0.05), margin=tcp_to_obj_init, sigmoid="long_tail")
        button_pressed = rewards.tolerance(obj_to_target, bounds=(0, 0.005), margin=MAX_DIST, sigmoid="long_tail")
        reward = 2 * rewards.hamacher_product(tcp_closed, near_button)
        reward = jnp.where(tcp_to_obj <= 0.05, reward + 8 * button_pressed, reward)
        return reward, info(
            obj_to_target <= 0.02, tcp_to_obj <= 0.05, obs[3] > 0, near_button, button_pressed, obj_to_target, reward,
        )


TASKS = (CoffeeButton(),)
