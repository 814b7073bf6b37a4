"""Ported tasks, one small module per family; each module lists its task objects in ``TASKS``.

``PORTED`` maps canonical names ('pick-place') to task objects, collected from every module here.
"""

import importlib
import pkgutil

PORTED = {}
for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name != "base"):
    for _task in getattr(importlib.import_module(f"{__name__}.{_mod}"), "TASKS", ()):
        PORTED[_task.name] = _task
