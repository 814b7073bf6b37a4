"""Where the training state lives on the devices: the data-parallel mesh over this host's (and every
process's) first --devices devices, and the sharding of each TrainState leaf on it (docs/scale_out.md).
"""

from __future__ import annotations

import jax
import numpy as np

from toppo_jax import config as cfg


def device_mesh(config: cfg.Config, num_tasks: int):
    """The 1-D mesh ('data') over the first --devices devices of every process (one process: of this
    host); None for one device in one process. Process p holds the p-th block of the mesh."""
    from jax.sharding import Mesh

    available = jax.local_devices()
    n = config.train.devices or len(available)
    if n > len(available):
        raise cfg.ConfigError(
            f"--devices {n}: this host has {len(available)} {jax.default_backend()} device(s); choose 1..{len(available)} (0: all)"
        )
    processes = jax.process_count()
    if n == 1 and processes == 1:
        return None
    label = f"--devices {n}" if processes == 1 else f"--devices {n} x {processes} processes = {n * processes} devices"
    cfg.check_device_split(config, n * processes, label)  # divisibility by the resolved count
    by_process = {}
    for device in jax.devices():
        by_process.setdefault(device.process_index, []).append(device)
    devices = [d for p in sorted(by_process) for d in sorted(by_process[p], key=lambda d: d.id)[:n]]
    return Mesh(np.asarray(devices), ("data",))


def state_shardings(abstract, mesh, num_members: int):
    """Where each TrainState leaf lives on the mesh: the member axis split (several members), else the
    env axis of the env state split and everything else (params, optimizer, PopArt, ...) replicated."""
    if mesh is None:
        return None
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    split, whole = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())

    def by_leading_axis(x):
        return split if x.ndim >= 1 and x.shape[0] % mesh.size == 0 else whole

    if num_members > 1:
        return jax.tree_util.tree_map(by_leading_axis, abstract)
    return jax.tree_util.tree_map(lambda _: whole, abstract).replace(env_state=jax.tree_util.tree_map(by_leading_axis, abstract.env_state))
