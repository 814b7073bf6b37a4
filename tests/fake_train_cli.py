"""`python tests/fake_train_cli.py ARGS...`: the trainer CLI on the fake env, as a real process.

The reliability tests kill and signal it. FAKE_TRAIN_CHUNK_PAUSE=<seconds> sleeps after every logged
chunk, so a signal sent at a random time lands in the middle of a run rather than after it.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import conftest_fake_env as fake  # noqa: E402

from toppo_jax import logger, train  # noqa: E402

pause = float(os.environ.get("FAKE_TRAIN_CHUNK_PAUSE", "0"))
if pause > 0:
    _log = logger.RunLogger.log

    def _slow_log(self, lines):
        _log(self, lines)
        time.sleep(pause)

    logger.RunLogger.log = _slow_log

if __name__ == "__main__":
    sys.exit(
        train.main(
            sys.argv[1:],
            make_env=fake.fake_factory(episode_length=15),
            task_catalog=(fake.GROUPS, fake.TASKS),
            compiler_options=fake.FAST_COMPILE,
        )
    )
