"""How `--workers N` starts its processes: forked from a fork server that imported
yamlnet once, started as early as the command knows it will need one.

A spawned worker is a fresh interpreter that imports numpy, pydantic and yamlnet, about
0.35 s of one core each, while the sweep waits; on 2 cores that costs a small sweep a
third of what its second worker saves. The fork server imports them once, on the core
the parent leaves idle while it imports the same modules itself, and each worker is then
a fork of it (a few milliseconds): no thread, lock or open file of the parent's is
inherited, as it would be with a plain fork. Where there is no fork server (Windows),
workers are spawned.

The server listens on a socket in the parent's multiprocessing folder (pymp-*), which
the parent removes as it exits; a parent killed by SIGKILL cannot, so the server removes
it when it sees the parent gone (runner/runs/served.py), and nothing is left behind.

This module imports only the standard library, so that the command can start the server
before its own heavy imports.
"""

import multiprocessing
import multiprocessing.util
import os

SERVED = "runner.runs.served"  # the module the fork server imports (see its docstring)
FOLDER = "YAMLNET_FORKSERVER_FOLDER"  # tells the server the folder of its socket


def context():
    """The multiprocessing context of local workers: the fork server's, preloading
    yamlnet, where the platform has one; else spawn."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([SERVED])
    return ctx


def warm():
    """Start the fork server now (it imports yamlnet in the background); no-op without one."""
    if context().get_start_method() == "forkserver":
        from multiprocessing import forkserver

        os.environ[FOLDER] = multiprocessing.util.get_temp_dir()
        try:
            forkserver.ensure_running()
        finally:
            del os.environ[FOLDER]
