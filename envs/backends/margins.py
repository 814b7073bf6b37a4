"""Geom margins for MJX collision functions that ignore them: grow the geom by its margin instead.

MuJoCo makes a contact for a geom pair when its distance ``dist`` is below the pair's margin
``m = margin1 + margin2`` and the constraint acts on ``dist - m`` (``efc_pos - efc_margin`` in the
impedance and reference acceleration). MJX JAX's box-box and capsule-box collision functions
(mujoco-mjx 3.16) return no contact for separated geoms (``dist`` = 1) whatever the margin, so the
Sawyer gripper's claws and pads (margin 0.001 in the official XML) touch 1 mm later and harder than
in official MuJoCo (measured: tests/test_jax_backend.py, drawer-close). MuJoCo Warp refuses non-zero
margins on MULTICCD pairs outright.

``inflate_margins`` moves the margin into the shape: a box's half-sizes, a sphere's, capsule's or
cylinder's radius (and a cylinder's half-height) grow by the geom's margin, and the margin becomes
0. For face contacts the new distance is ``dist - margin`` exactly, so ``efc_pos - efc_margin`` and
every contact force are unchanged; on edges and corners the grown box is sharp where the official
margin region is rounded (at most ``(sqrt(3) - 1) * margin``, 0.7 mm for 1 mm, apart).
"""

from __future__ import annotations

import copy

import mujoco
import numpy as np

# geom type -> which entries of geom_size grow by the margin
_GROWN_SIZES = {
    int(mujoco.mjtGeom.mjGEOM_SPHERE): (0,),
    int(mujoco.mjtGeom.mjGEOM_CAPSULE): (0,),
    int(mujoco.mjtGeom.mjGEOM_CYLINDER): (0, 1),
    int(mujoco.mjtGeom.mjGEOM_BOX): (0, 1, 2),
    int(mujoco.mjtGeom.mjGEOM_ELLIPSOID): (0, 1, 2),
}


def inflatable(model: mujoco.MjModel, geoms=None) -> list[int]:
    """Geoms (of ``geoms``, default all) with a margin, no gap and a primitive shape ``inflate_margins`` can grow."""
    ids = range(model.ngeom) if geoms is None else geoms
    return sorted(int(g) for g in ids if model.geom_margin[g] > 0 and model.geom_gap[g] == 0
                  and int(model.geom_type[g]) in _GROWN_SIZES)


def inflate_margins(model: mujoco.MjModel, geoms) -> tuple[mujoco.MjModel, tuple[str, ...]]:
    """Shape grown by the margin, margin 0: size' = size + margin, margin' = 0 (``dist' - 0 = dist - margin``).

    Returns a copy of ``model`` with ``geoms`` (ids from ``inflatable``) edited, and the edits in words."""
    m = copy.copy(model)
    edits = []
    for g in geoms:
        t, margin = int(m.geom_type[g]), float(m.geom_margin[g])
        if t not in _GROWN_SIZES or m.geom_gap[g] != 0:
            raise ValueError(f"geom {g}: cannot grow a {mujoco.mjtGeom(t).name} with gap {m.geom_gap[g]} by its margin")
        before = m.geom_size[g].copy()
        for i in _GROWN_SIZES[t]:
            m.geom_size[g][i] += margin
        m.geom_rbound[g] += margin
        m.geom_aabb[g][3:] += margin
        m.geom_margin[g] = 0.0
        name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g) or f"geom {g}"
        edits.append(f"{name}: margin {margin:.4g} -> 0, size {np.round(before[:3], 4).tolist()} -> "
                     f"{np.round(m.geom_size[g][:3], 4).tolist()} (grown by the margin)")
    return m, tuple(edits)
