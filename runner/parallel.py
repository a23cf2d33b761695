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
import tempfile

from runner import atomic, experiment, runs
from runner.errors import RunFailed, UserError


def in_processes(found, workers, force, on_trial=None):
    """Run the trials in `workers` local processes. [Outcome] in trial order."""
    context = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(local_trial, t.plan.resolved, os.path.dirname(
            os.path.dirname(t.plan.folder)), force): i for i, t in enumerate(found)}
        outcomes = [None] * len(found)
        try:
            for future in cf.as_completed(futures):
                outcomes[futures[future]] = future.result()
                if on_trial:
                    on_trial(outcomes[futures[future]])
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return outcomes


def local_trial(resolved, out, force):
    """In a worker process: plan and run one trial from its resolved config (a dict)."""
    from runner.sweep import run_trial
    from schemas import load_config_dict

    return run_trial(experiment.plan(load_config_dict(resolved, source="trial"), out), force)


def remote_trial(resolved, inputs):
    """On a worker: run one trial from its resolved config (a dict) and the bytes of its
    input files {path: bytes}. Returns (status, metrics, info, error, {file: bytes})."""
    from schemas import load_config_dict

    tmp = tempfile.mkdtemp(prefix="yamlnet-trial-")
    try:
        tree = copy.deepcopy(resolved)
        for i, (key, path) in enumerate(runs.input_files(tree).items()):
            local = os.path.join(tmp, f"{i}-{os.path.basename(path)}")
            with open(local, "wb") as f:
                f.write(inputs[path])
            runs.set_key(tree, key, local)
        config = load_config_dict(tree, source="trial")
        folder = runs.RunFolder(os.path.join(tmp, "out"))
        os.makedirs(folder.path)
        status, metrics, error = "complete", {}, None
        try:
            metrics = experiment.compute(config, folder)
        except RunFailed as e:
            status, error = "failed", str(e)
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
    folder = runs.RunFolder(p.folder)
    folder.start(p.resolved, {"id": p.id, "seed": p.config.seed, "inputs": p.digests})
    for name, data in files.items():
        atomic.write_bytes(folder.file(name), data)
    folder.info.update(info)
    extra = {"metrics": metrics} if status == "complete" else {"error": error}
    folder.finish(status, **extra)
    return experiment.Outcome(p.folder, p.id, status, metrics, error)


def on_dask(found, address, force, on_trial=None):
    """Run the trials as tasks on the Dask scheduler at `address`. [Outcome] in order."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise UserError("--scheduler needs the 'dask' extra: pip install 'yamlnet[dask]'") from None
    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError) as e:
        raise UserError(f"--scheduler {address}: cannot reach the scheduler ({e})") from None
    outcomes = [None] * len(found)
    with client:
        todo = []
        for i, trial in enumerate(found):
            if trial.plan.status == "complete" and not force:
                outcomes[i] = experiment.Outcome(trial.plan.folder, trial.plan.id, "skipped")
            else:
                todo.append(i)
        paths = {path for i in todo for path in runs.input_files(found[i].plan.resolved).values()}
        blobs = {}
        for path in paths:
            with open(path, "rb") as f:
                blobs[path] = f.read()
        shipped = client.scatter(blobs, broadcast=True) if blobs else {}
        futures = {}
        for i in todo:
            mine = {p: shipped[p] for p in runs.input_files(found[i].plan.resolved).values()}
            futures[client.submit(remote_trial, found[i].plan.resolved, mine, pure=False)] = i
        for future in as_completed(futures):
            i = futures[future]
            outcomes[i] = _land(found[i], future.result())
            if on_trial:
                on_trial(outcomes[i])
    return outcomes
