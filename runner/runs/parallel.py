"""Sweep trials in parallel: local processes, or tasks on a Dask distributed cluster.

On Dask the workers need neither the data files nor a shared filesystem: the client
ships the bytes of every input file once (scattered to all workers), each task
computes its trial in a private temporary folder and returns the output files, and the
client writes every run folder itself.
"""

import concurrent.futures as cf
import copy
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from contextlib import contextmanager

from runner.errors import RunFailed, UserError
from runner.io import atomic, checkpoints
from runner.runs import experiment, folders, processes
from runner.runs import threads as blas
from schemas import set_path


def run_trial(plan, force=False, restart=False, wait=True, since=None, threads=None):
    """Run one trial where it stands; a failed fit is an outcome, not an exception."""
    try:
        return experiment.execute(plan, force=force, restart=restart, wait=wait, since=since,
                                  threads=threads)
    except RunFailed as e:
        return experiment.Outcome(plan.folder, plan.id, "failed", error=str(e))


def run(found, force=False, workers=1, scheduler=None, on_trial=None, restart=False,
        threads=None):
    """Run the trials (skipping complete ones unless force) sequentially, in `workers`
    local processes, or on the Dask scheduler at `scheduler`. [Outcome] in trial order.
    Each worker process (each Dask worker thread) gets its share of the cores' BLAS
    threads; `threads` sets the BLAS threads of every trial instead (threads.for_run)."""
    if scheduler:
        return on_dask(found, scheduler, force, on_trial, threads)
    if workers > 1:
        return in_processes(found, workers, force, on_trial, restart, threads)
    outcomes, started = [None] * len(found), time.time()
    for wait in (False, True):  # trials another process is computing are taken up last
        for i, trial in enumerate(found):
            if outcomes[i] is None or outcomes[i].status == "busy":
                outcomes[i] = run_trial(trial.plan, force, restart, wait, started if wait else None,
                                        threads)
                if on_trial and outcomes[i].status != "busy":
                    on_trial(outcomes[i])
    return outcomes


def in_processes(found, workers, force, on_trial=None, restart=False, threads=None):
    """Run the trials in `workers` local processes. [Outcome] in trial order.

    Ctrl-C (or any error) stops the sweep: pending trials are cancelled and every worker
    gets SIGINT, which interrupts its running trial (marked `interrupted`) and keeps it
    from starting another; then the pool is joined, so nothing runs on after we return."""
    context = processes.context()
    stop = context.Event()  # set on Ctrl-C: a worker still starting up starts no trial
    # Only this process holds the sending end: when it dies, however it dies, the
    # kernel closes it and every worker reads end-of-file at once (see _watch_parent).
    lifeline, alive = context.Pipe(duplex=False)
    pool, outcomes = None, [None] * len(found)
    try:
        with _spawning():
            pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                          initializer=_worker_setup,
                                          initargs=(lifeline, stop, blas.per_worker(workers)))
            futures = {pool.submit(local_trial, t.plan.resolved, os.path.dirname(
                os.path.dirname(t.plan.folder)), force, restart, threads, t.plan.until): i
                for i, t in enumerate(found)}
        for future in cf.as_completed(futures):
            outcomes[futures[future]] = future.result()
            if on_trial:
                on_trial(outcomes[futures[future]])
    except BaseException:
        stop.set()
        for child in multiprocessing.active_children():
            _signal(child.pid, signal.SIGINT)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)  # (a second shutdown would not wait)
        raise
    else:
        pool.shutdown(wait=True)
    finally:
        lifeline.close()
        alive.close()
    return outcomes


@contextmanager
def _spawning():
    """While worker processes are spawned, SIGINT is ignored, so that they start with it
    ignored (until _worker_setup installs their handler): a Ctrl-C during their start-up
    then prints no traceback. (A Ctrl-C in these few milliseconds of spawning is lost.)"""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _signal(pid, signum):
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


_worker = {"busy": False, "stopping": False, "stop": None}
ORPHAN_GRACE = 30.0  # seconds an orphaned worker has to mark its trial interrupted


def _worker_setup(lifeline, stop, threads):
    """In each worker process: BLAS gets `threads` threads (its share of the cores);
    SIGINT interrupts the running trial and keeps the worker from starting another, as
    does `stop` (an Event); a worker whose parent died (killed) interrupts itself.
    `lifeline` is the receiving end of a pipe whose only sending end the parent holds."""
    blas.cap(threads)
    _worker["stop"] = stop
    signal.signal(signal.SIGINT, _on_sigint)
    threading.Thread(target=_watch_parent, args=(lifeline,), daemon=True).start()


def _on_sigint(signum, frame):
    """Interrupt the running trial once: a second SIGINT (Ctrl-C reaches a worker both
    from the terminal and from the parent) must not break the trial's own clean-up,
    which marks its folder `interrupted`."""
    if _worker["stopping"]:
        return
    _worker["stopping"] = True
    if _worker["busy"]:
        raise KeyboardInterrupt


def _watch_parent(lifeline):
    """Block until the parent is gone: nothing is ever sent on `lifeline`, so the read
    returns (EOFError) only when the kernel closes the parent's end as it dies. Woken by
    that event rather than by polling os.getppid(), a worker stops at once: its running
    trial neither runs on to the end nor is followed by a queued one."""
    try:
        lifeline.recv_bytes()
    except (EOFError, OSError):
        pass
    os.kill(os.getpid(), signal.SIGINT)
    deadline = time.monotonic() + ORPHAN_GRACE
    while _worker["busy"] and time.monotonic() < deadline:
        time.sleep(0.1)
    os._exit(1)


def local_trial(resolved, out, force, restart=False, threads=None, until=None):
    """In a worker process: plan and run one trial from its resolved config (a dict),
    halting its fit after epoch `until` when given (a successive-halving rung)."""
    from schemas import load_config_dict

    _worker["busy"] = True
    try:
        if _worker["stopping"] or _worker["stop"].is_set():
            raise KeyboardInterrupt
        p = experiment.plan(load_config_dict(resolved, source="trial"), out)
        p.until = until
        return run_trial(p, force, restart, threads=threads)
    finally:
        _worker["busy"] = False


def remote_trial(resolved, inputs, threads=None, until=None, resume=None, run_id=None):
    """On a worker: run one trial from its resolved config (a dict) and the bytes of its
    input files {path: bytes}, BLAS held to the worker's share of its machine's cores
    (or to `threads`); a successive-halving rung halts the fit after epoch `until`, and
    goes on from the train.Checkpoint `resume` of the run `run_id`. Returns (status,
    metrics, info, error, {file: bytes})."""
    from schemas import load_config_dict

    tmp = tempfile.mkdtemp(prefix="yamlnet-trial-")
    try:
        tree = copy.deepcopy(resolved)
        for i, (key, path) in enumerate(folders.input_files(tree).items()):
            local = os.path.join(tmp, f"{i}-{os.path.basename(path)}")
            with open(local, "wb") as f:
                f.write(inputs[path])
            set_path(tree, key, local)
        config = load_config_dict(tree, source="trial")
        folder = folders.RunFolder(os.path.join(tmp, "out"))
        os.makedirs(folder.path)
        if run_id is not None:  # names the run in a halted fit's checkpoint
            folder.info["id"] = run_id
        if resume is not None:
            folder.info["resumed"] = resume.epoch
        status, metrics, error = "complete", {}, None
        started = time.perf_counter()
        try:
            with blas.limited(_dask_threads(config, threads)):
                metrics = experiment.compute(config, folder, resume=resume, until=until)
            status = "halted" if "halted_at" in folder.info else status
        except RunFailed as e:
            status, error = "failed", str(e)
        folder.info["seconds"] = time.perf_counter() - started  # the trial's, not the client's
        files = {}
        for name in os.listdir(folder.path):
            with open(folder.file(name), "rb") as f:
                files[name] = f.read()
        return status, metrics, folder.info, error, files
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _land(trial, result):
    """On the client: write a trial's returned files into its run folder."""
    status, metrics, info, error, files = result
    p = trial.plan
    folder = folders.RunFolder(p.folder)
    try:
        folder.start(p.resolved, {"id": p.id, "seed": p.config.seed, "inputs": p.digests})
        for name, data in files.items():
            atomic.write_bytes(folder.file(name), data)
        info = dict(info)
        seconds = info.pop("seconds", None)
        folder.info.update(info)
        extra = {"metrics": metrics} if status in ("complete", "halted") else {"error": error}
        folder.finish(status, seconds=seconds, **extra)
    except KeyboardInterrupt:
        folder.finish("interrupted")
        raise
    return experiment.Outcome(p.folder, p.id, status, metrics, error)


def _probe(address):
    """Fail at once (OSError, ValueError) for an unknown scheme or a TCP address where
    nothing listens, instead of letting the client retry until its timeout."""
    from distributed.comm import parse_address, parse_host_port
    from distributed.comm.registry import get_backend

    scheme, location = parse_address(address)
    get_backend(scheme)
    if scheme in ("tcp", "tls"):
        host, port = parse_host_port(location, default_port=8786)
        socket.create_connection((host, port), timeout=5).close()


def _dask_threads(config, threads):
    """BLAS threads of a trial on this Dask worker: `threads`, or what the fit calls for
    within the worker's share of the cores (one per task thread it runs at once)."""
    from distributed import get_worker

    share = blas.per_worker(get_worker().state.nthreads)
    chosen = blas.for_run(config, threads)
    return chosen if threads is not None else min(chosen or share, share)


def connect(address):
    """A distributed.Client of the Dask scheduler at `address` (sweeps, sharded predict);
    a UserError when the extra is missing or nothing answers there."""
    try:
        from distributed import Client
    except ImportError:
        raise UserError("--scheduler needs the 'dask' extra: pip install 'yamlnet[dask]'") from None
    try:
        _probe(address)
        return Client(address, timeout="10s")
    except (OSError, TimeoutError, ValueError) as e:
        raise UserError(f"--scheduler {address}: cannot reach the scheduler ({e}); give the "
                        "address of a running `dask scheduler`, e.g. tcp://127.0.0.1:8786") from None


def on_dask(found, address, force, on_trial=None, threads=None):
    """Run the trials as tasks on the Dask scheduler at `address`. [Outcome] in order."""
    client = connect(address)
    outcomes, locks, asked = [None] * len(found), {}, time.time()
    try:
        with client:
            todo, held = [], []
            for i, trial in enumerate(found):
                if not force and experiment.done(trial.plan):  # (or halted at its rung)
                    outcomes[i] = experiment.Outcome(trial.plan.folder, trial.plan.id, "skipped")
                    continue
                locks[i] = folders.Lock(trial.plan.folder)  # as experiment.execute takes it
                (todo if _try_lock(locks[i], trial.plan.folder) else held).append(i)
            shipped = _ship(client, [found[i] for i in todo + held])
            _compute(client, found, todo, shipped, outcomes, on_trial, threads, force)
            redo = []
            for i in held:  # another process is computing these: wait, then take its result
                locks[i].acquire()
                outcomes[i] = _finished_elsewhere(found[i].plan, asked)
                if outcomes[i] is None:
                    redo.append(i)
                elif on_trial:
                    on_trial(outcomes[i])
            _compute(client, found, redo, shipped, outcomes, on_trial, threads, force)
    finally:
        for lock in locks.values():
            lock.release()
    return outcomes


def _try_lock(lock, folder):
    try:
        return lock.acquire(wait=False)
    except OSError as e:
        raise UserError(f"cannot write the run folder {folder}: {e.filename or ''}: "
                        f"{e.strerror or e}; choose a writable --out folder") from None


def _finished_elsewhere(p, asked):
    """The Outcome of the run at Plan `p` when another process finished it after `asked`
    (a time), or None: it is still to be computed."""
    info = folders.read_info(p.folder)
    if info.get("finished", 0) < asked or info.get("status") not in ("complete", "failed"):
        return None
    if info["status"] == "failed":
        return experiment.Outcome(p.folder, p.id, "failed", error=info.get("error"),
                                  elsewhere=True)
    return experiment.Outcome(p.folder, p.id, "skipped", info.get("metrics", {}), elsewhere=True)


def _ship(client, trials):
    """Scatter the bytes of every input file of `trials` to all workers: {path: future}."""
    paths = {path for t in trials for path in folders.input_files(t.plan.resolved).values()}
    blobs = {}
    for path in paths:
        with open(path, "rb") as f:
            blobs[path] = f.read()
    return client.scatter(blobs, broadcast=True) if blobs else {}


def _compute(client, found, todo, shipped, outcomes, on_trial, threads=None, force=False):
    """Submit the trials at indices `todo` and land each result as it comes. A trial
    halted at a successive-halving rung goes on from its checkpoint (unless force)."""
    from distributed import as_completed

    futures = {}
    for i in todo:
        p = found[i].plan
        if not force and experiment.done(p):  # finished elsewhere while we waited
            outcomes[i] = experiment.Outcome(p.folder, p.id, "skipped")
            continue
        resume = checkpoints.load(p.folder, p.id) if not force and p.status == "halted" else None
        mine = {path: shipped[path] for path in folders.input_files(p.resolved).values()}
        futures[client.submit(remote_trial, p.resolved, mine, threads, p.until, resume, p.id,
                              pure=False)] = i
    for future in as_completed(futures):
        i = futures[future]
        outcomes[i] = _land(found[i], future.result())
        if on_trial:
            on_trial(outcomes[i])
