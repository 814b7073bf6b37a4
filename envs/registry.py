"""Task registry: names, benchmark sets, and name resolution with helpful errors.

Names are the official v3 names without the ``-v3`` suffix (``pick-place``); the suffix is
accepted. ``mt10`` / ``mt50`` expand to the official benchmark lists in the official order.
"""

from __future__ import annotations

import difflib

from envs.tasks import PORTED

# Official ALL_V3_ENVIRONMENTS order (task id = index in MT50, as in metaworld's one-hot wrapper).
MT50 = (
    "assembly", "basketball", "bin-picking", "box-close", "button-press-topdown",
    "button-press-topdown-wall", "button-press", "button-press-wall", "coffee-button", "coffee-pull",
    "coffee-push", "dial-turn", "disassemble", "door-close", "door-lock", "door-open", "door-unlock",
    "hand-insert", "drawer-close", "drawer-open", "faucet-open", "faucet-close", "hammer",
    "handle-press-side", "handle-press", "handle-pull-side", "handle-pull", "lever-pull",
    "pick-place-wall", "pick-out-of-hole", "pick-place", "plate-slide", "plate-slide-side",
    "plate-slide-back", "plate-slide-back-side", "peg-insert-side", "peg-unplug-side", "soccer",
    "stick-push", "stick-pull", "push", "push-wall", "push-back", "reach", "reach-wall",
    "shelf-place", "sweep-into", "sweep", "window-open", "window-close",
)
MT10 = (
    "reach", "push", "pick-place", "door-open", "drawer-open", "drawer-close",
    "button-press-topdown", "peg-insert-side", "window-open", "window-close",
)
TASKS = PORTED
SETS = {"mt10": MT10, "mt50": MT50}


class UnknownTaskError(ValueError):
    """A task or task-set name that does not exist or is not ported yet."""


def canonical(name: str, names=None, sets=None) -> str:
    """'pick-place-v3' / 'Pick-Place' -> 'pick-place'; raises UnknownTaskError with a suggestion.

    `names` / `sets` replace the ported tasks and the benchmark sets (another catalog, e.g. a test env's)."""
    names, sets = (PORTED if names is None else names), (SETS if sets is None else sets)
    key = name.strip().lower()
    if key.endswith("-v3"):
        key = key[:-3]
    if key in names:
        return key
    valid = sorted(names)
    close = difflib.get_close_matches(key, list(dict.fromkeys([*MT50, *names])) + list(sets), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    if key in MT50 and names is PORTED:
        raise UnknownTaskError(f"task '{name}' is a Meta-World task but is not ported yet; ported: {', '.join(valid)}")
    raise UnknownTaskError(f"unknown task '{name}'{hint}; valid: {', '.join(sets)}, or any of {', '.join(valid)}")


def resolve_tasks(spec: str | list[str] | tuple[str, ...], *, names=None, sets=None) -> tuple[str, ...]:
    """'mt10' | 'mt50' | 'reach' | 'reach,push' | list -> tuple of canonical names (order kept, no duplicates).

    The one task resolver of the project: `names` (task names) and `sets` ({name: tasks}) replace the
    ported tasks and MT10/MT50 for another catalog (the trainer's tests inject a fake env's)."""
    names = PORTED if names is None else tuple(names)
    sets = SETS if sets is None else {k.lower(): tuple(v) for k, v in sets.items()}
    items = [s for s in spec.split(",") if s.strip()] if isinstance(spec, str) else list(spec)
    expanded: list[str] = []
    for item in items:  # set names expand in place: 'mt10,door-close'
        members = sets.get(item.strip().lower())
        if members is not None:
            missing = [t for t in members if t not in names]
            if missing:
                raise UnknownTaskError(
                    f"'{item}' needs {len(missing)} tasks that are not ported yet ({', '.join(missing[:5])}, ...); "
                    f"ported tasks: {', '.join(sorted(names))}"
                )
        expanded.extend(members or (item,))
    items = expanded
    if not items:
        raise UnknownTaskError(f"empty task list; valid: {', '.join(sets)}, or comma-separated task names")
    out: list[str] = []
    for item in items:
        c = canonical(item, names, sets)
        if c in out:
            raise UnknownTaskError(f"task '{item}' is listed twice")
        out.append(c)
    return tuple(out)


def benchmark_for(tasks: tuple[str, ...]) -> str:
    """Which official benchmark's goal tables a task set uses: MT10 if it is a subset of MT10, else MT50."""
    return "MT10" if set(tasks) <= set(MT10) else "MT50"
