"""Ported tasks, one small module per family. ``PORTED`` maps canonical names to task objects."""

from envs.tasks.drawer import DrawerOpen
from envs.tasks.reach import Reach

PORTED = {t.name: t for t in (Reach(), DrawerOpen())}
