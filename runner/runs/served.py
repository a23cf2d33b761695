"""Imported by the fork server of `--workers` only (runner/runs/processes.py): loads
what a trial needs, so that every worker forked from the server starts with it loaded.

In the server it also
- sets SIGINT to be ignored before the server saves the handlers that its forked
  children restore: a worker then ignores Ctrl-C until its set-up installs the handler
  that interrupts its trial (runner.runs.parallel._worker_setup), so a Ctrl-C in the
  milliseconds of its start prints no traceback;
- removes the folder of the server's socket when the server exits, which it does when
  its parent is gone: a parent killed by SIGKILL leaves nothing behind.
"""

import atexit
import os
import shutil
import signal

import runner.runs.parallel  # noqa: F401  (the trial code and everything it imports)
from runner.runs.processes import FOLDER

signal.signal(signal.SIGINT, signal.SIG_IGN)
if os.environ.get(FOLDER):
    atexit.register(shutil.rmtree, os.environ.pop(FOLDER), ignore_errors=True)
