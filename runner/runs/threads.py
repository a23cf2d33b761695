"""BLAS threads that fit the machine: N worker processes share its cores, and a fit
whose matrices are too small for two threads to pay runs on one.

A fit's work per minibatch step is measured in multiply-adds of its forward pass,
batch * sum(fan_in * units); below ONE_THREAD_BELOW one BLAS thread is faster than
two: the threads' hand-offs cost more than they save (`python bench/run.py --cases
threads` measures where). Thread counts never change results: BLAS splits a matrix
product by output blocks, each computed in the same order by one thread.
"""

import os
from contextlib import contextmanager, nullcontext

from runner.errors import UserError
from runner.runs import prepare

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
ONE_THREAD_BELOW = 1_000_000  # multiply-adds per step; bench/run.py --cases threads


def per_worker(workers):
    """BLAS threads of each of `workers` processes (or Dask threads) on this machine."""
    return max(1, CORES // max(1, workers))


def step_work(config):
    """Multiply-adds of the forward pass of one minibatch step of `config`'s fit, or None
    when the width of its inputs is not known without reading the training rows."""
    sizes = [layer.units for layer in config.model.layers]
    inputs = config.model.inputs
    if inputs is None:
        if config.data.column_types() is not None:
            return None
        try:
            inputs = prepare.n_inputs(config)
        except (UserError, OSError):
            return None  # the run itself reports it
    batch = config.train.batch_size
    if batch == "full":
        return None
    widths = [inputs, *sizes]
    return batch * sum(a * b for a, b in zip(widths, widths[1:]))


def for_run(config, threads=None):
    """BLAS threads for the run of `config`: `threads` when given; 1 for a fit whose
    steps are below ONE_THREAD_BELOW; otherwise None (as many as the process has)."""
    if threads is not None:
        return threads
    if config.train is None:
        return None  # a forward pass splits its large batches over threads itself
    work = step_work(config)
    return 1 if work is not None and work < ONE_THREAD_BELOW else None


def limited(threads):
    """A context in which BLAS uses `threads` threads (None: leave it as it is)."""
    if threads is None:
        return nullcontext()
    return _limit(threads)


@contextmanager
def _limit(threads):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=threads, user_api="blas"):
        yield


def cap(threads):
    """Hold this whole process to `threads` BLAS threads from now on (worker processes)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(limits=threads, user_api="blas")
