"""Multi-host runs: one trainer process per host, joined by JAX's own distributed runtime.

`initialize` calls `jax.distributed.initialize` when the environment says several processes were
launched together, before anything touches a JAX backend:

- `env`:   JAX_COORDINATOR_ADDRESS=host:port, JAX_NUM_PROCESSES=N (> 1), JAX_PROCESS_ID=i (any launcher,
           and the localhost test);
- `slurm`: inside `srun` with more than one task (SLURM_STEP_NUM_TASKS or SLURM_NTASKS > 1; JAX reads
           the node list, task id and a coordinator port from SLURM's variables);
- `ompi`:  `mpirun` (Open MPI, OMPI_COMM_WORLD_SIZE > 1);
- `tpu`:   a Cloud TPU VM pod slice (TPU_WORKER_HOSTNAMES names more than one worker).

Every process then runs the same program on a mesh of all processes' devices (SPMD); the host loop
lets process 0 alone write the run directory's files (config, metrics, plots, videos, wandb), while
orbax writes each checkpoint once, every process taking part (a shared filesystem is needed).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Mapping


class DistributedError(ValueError):
    """The environment asks for a multi-process run that cannot be set up (bad variable, failed join)."""


@dataclasses.dataclass(frozen=True)
class Cluster:
    """Where this process stands: index in 0..count-1 and what launched it ('single' when alone)."""

    process_index: int = 0
    process_count: int = 1
    launcher: str = "single"


def _int_var(environ: Mapping[str, str], name: str) -> int | None:
    value = environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise DistributedError(f"{name}={value!r} is not an integer") from None


def detect_launcher(environ: Mapping[str, str] = os.environ) -> str | None:
    """The launcher that started several processes ('env', 'slurm', 'ompi', 'tpu'), None for a single process."""
    if environ.get("JAX_COORDINATOR_ADDRESS") and (_int_var(environ, "JAX_NUM_PROCESSES") or 1) > 1:
        return "env"
    if "SLURM_PROCID" in environ and (_int_var(environ, "SLURM_STEP_NUM_TASKS") or _int_var(environ, "SLURM_NTASKS") or 1) > 1:
        return "slurm"
    if (_int_var(environ, "OMPI_COMM_WORLD_SIZE") or 1) > 1:
        return "ompi"
    if len([h for h in environ.get("TPU_WORKER_HOSTNAMES", "").split(",") if h.strip()]) > 1:
        return "tpu"
    return None


def join_arguments(launcher: str, environ: Mapping[str, str] = os.environ) -> dict:
    """Keyword arguments of `jax.distributed.initialize` for a launcher (JAX detects the others itself)."""
    if launcher != "env":
        return {}
    count, index = _int_var(environ, "JAX_NUM_PROCESSES"), _int_var(environ, "JAX_PROCESS_ID")
    if index is None:
        raise DistributedError(f"JAX_COORDINATOR_ADDRESS and JAX_NUM_PROCESSES={count} are set but JAX_PROCESS_ID is not; "
                               f"give each process its index 0..{count - 1}")
    if not 0 <= index < count:
        raise DistributedError(f"JAX_PROCESS_ID={index} is out of range; valid: 0..{count - 1} (JAX_NUM_PROCESSES={count})")
    address = environ["JAX_COORDINATOR_ADDRESS"]
    if ":" not in address:
        raise DistributedError(f"JAX_COORDINATOR_ADDRESS={address!r} needs a port, e.g. {address}:12345")
    return {"coordinator_address": address, "num_processes": count, "process_id": index}


def initialize(mode: str = "auto", environ: Mapping[str, str] = os.environ) -> Cluster:
    """Join the other processes of this run (see the module docstring); `off` never joins, `on` always
    lets JAX detect the cluster. Idempotent: a second call returns the cluster already joined."""
    import jax

    if jax.distributed.is_initialized():
        return Cluster(jax.process_index(), jax.process_count(), "joined")
    launcher = detect_launcher(environ) if mode != "off" else None
    if launcher is None and mode != "on":
        return Cluster()
    kwargs = join_arguments(launcher, environ) if launcher else {}
    try:
        jax.distributed.initialize(**kwargs)
    except (ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DistributedError(f"could not join the {launcher or 'detected'} cluster: {first}") from None
    return Cluster(jax.process_index(), jax.process_count(), launcher or "detected")


def any_process(flag: bool) -> bool:
    """True on every process when it is True on any (a collective: every process must call it)."""
    import jax
    import numpy as np
    from jax.experimental import multihost_utils

    if jax.process_count() == 1:
        return bool(flag)
    return bool(np.any(multihost_utils.process_allgather(np.asarray([flag], np.int32))))


def from_primary(value: bool) -> bool:
    """Process 0's `value` on every process (a collective: every process must call it)."""
    import jax
    import numpy as np
    from jax.experimental import multihost_utils

    if jax.process_count() == 1:
        return bool(value)
    return bool(multihost_utils.broadcast_one_to_all(np.asarray(value, np.int32)))


def barrier(name: str) -> None:
    """Every process waits here until all have arrived (no-op for one process)."""
    import jax
    from jax.experimental import multihost_utils

    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)
