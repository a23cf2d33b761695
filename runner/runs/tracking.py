"""Experiment tracking: a finished run folder logged to MLflow (extra 'mlflow';
mlflow-skinny is enough), after the run and from the folder's own files, so tracking can
change neither the run's id nor its bytes.

One MLflow run per yamlnet run (per sweep trial), in the experiment named by
track.mlflow.experiment (default: the config's name), at track.mlflow.uri (default:
MLflow's own MLFLOW_TRACKING_URI):
- params: config.yaml flattened to dotted keys, as --set writes them
  (model.layers.0.units = 4; characters MLflow refuses in a key become "_");
- tags: yamlnet.run_id, yamlnet.status, yamlnet.folder, yamlnet.started, yamlnet.version,
  yamlnet.input.<key> = the sha256 of each input file (data.path, ...), yamlnet.sweep;
- metrics: each row of history.csv at step = its epoch, every column but epoch; the final
  metrics of run.json as final.<name>;
- artifacts: every file of the run folder;
- the status: complete -> FINISHED, failed -> FAILED, interrupted -> KILLED.
A folder already logged (same run id and start time) is not logged again. A store that
cannot be reached, or refuses the run, is a TrackingWarning, never a failed run; HTTP
requests give up after 2 retries and 10 s each unless MLFLOW_HTTP_REQUEST_* say otherwise.
"""

import contextlib
import csv
import json
import math
import os
import re
import warnings

from runner.errors import UserError
from runner.runs import folders
from schemas.yamlread import read

EXTRA = "tracking with MLflow needs the extra 'mlflow': pip install 'yamlnet[mlflow]'"
STATUS = {"complete": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
BATCH = 100  # params or tags per log_batch call (MLflow's limit); metrics: 1000


class TrackingWarning(UserWarning):
    """The tracking store could not take a run; the run itself is unaffected."""


def settings(config, track=None):
    """{uri, experiment} when the config has track.mlflow or track == "mlflow" (the
    --track flag), else None. A UserError naming the extra when mlflow is not installed,
    before anything runs."""
    spec = config.track.mlflow if config.track is not None else None
    if spec is None and track != "mlflow":
        return None
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise UserError(EXTRA) from None
    return {"uri": spec.uri if spec else None,
            "experiment": (spec.experiment if spec else None) or config.name}


def flatten(tree, prefix=""):
    """{dotted key: text} of a config tree: mappings and lists are walked (list items by
    index), leaves written as YAML writes them (strings bare, null, true, 0.5)."""
    if isinstance(tree, dict | list) and tree:
        items = tree.items() if isinstance(tree, dict) else enumerate(tree)
        return {k: v for key, value in items for k, v in flatten(value, f"{prefix}{key}.").items()}
    text = tree if isinstance(tree, str) else json.dumps(tree)
    return {re.sub(r"[^\w\-. :/]", "_", prefix[:-1])[:250]: text}


def log(spec, folder, sweep=None):
    """Log the finished run folder `folder` as an MLflow run; returns its MLflow run id,
    or None: no tracking (spec None), or the store failed (a TrackingWarning says why)."""
    if spec is None or not folders.read_info(folder):
        return None
    try:
        with _http_defaults():
            return _log(spec, folder, sweep)
    except Exception as e:  # noqa: BLE001  (whatever the store raises, the run stands)
        where = spec["uri"] or os.environ.get("MLFLOW_TRACKING_URI") or "MLflow's default store"
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        warnings.warn(TrackingWarning(f"MLflow tracking at {where} failed for {folder}: "
                                      f"{reason}; the run itself is unaffected"), stacklevel=2)
        return None


@contextlib.contextmanager
def _http_defaults():
    added = {k: v for k, v in HTTP_DEFAULTS.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def _log(spec, folder, sweep):
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    info = folders.read_info(folder)
    client = MlflowClient(tracking_uri=spec["uri"])
    found = client.get_experiment_by_name(spec["experiment"])
    experiment = found.experiment_id if found else client.create_experiment(spec["experiment"])
    started = str(info.get("started"))
    done = client.search_runs([experiment], f"tags.`yamlnet.run_id` = '{info.get('id')}' and "
                              f"tags.`yamlnet.started` = '{started}'", max_results=1)
    if done:
        return done[0].info.run_id
    start = int(float(info.get("started", 0)) * 1000)
    run = client.create_run(experiment, start_time=start, tags=_tags(info, folder, sweep),
                            run_name=f"{os.path.basename(os.path.dirname(folder))}-{info.get('id')}")
    rid = run.info.run_id
    try:
        with open(os.path.join(folder, "config.yaml"), encoding="utf-8") as f:
            params = flatten(read(f.read(), lambda mark: None)[0] or {})
        params = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(params), BATCH):
            client.log_batch(rid, params=params[i:i + BATCH])
        metrics = [Metric(k, v, t, s) for k, v, t, s in _metrics(folder, info, start)]
        for i in range(0, len(metrics), 10 * BATCH):
            client.log_batch(rid, metrics=metrics[i:i + 10 * BATCH])
        client.log_artifacts(rid, folder)
        end = int(float(info.get("finished", info.get("started", 0))) * 1000)
        client.set_terminated(rid, STATUS.get(info.get("status"), "FAILED"), end_time=end)
    except BaseException:
        with contextlib.suppress(Exception):
            client.set_terminated(rid, "FAILED")
        raise
    return rid


def _tags(info, folder, sweep):
    tags = {"yamlnet.run_id": str(info.get("id")), "yamlnet.status": str(info.get("status")),
            "yamlnet.folder": os.path.abspath(folder), "yamlnet.started": str(info.get("started")),
            "yamlnet.version": str(info.get("versions", {}).get("yamlnet"))}
    tags.update({f"yamlnet.input.{key}": str(digest)
                 for key, digest in (info.get("inputs") or {}).items()})
    if sweep is not None:
        tags["yamlnet.sweep"] = sweep
    if info.get("error"):
        tags["yamlnet.error"] = str(info["error"])[:5000]
    return tags


def _metrics(folder, info, start):
    """(key, value, timestamp ms, step) of every history.csv cell (step = its epoch,
    timestamp = the start plus the seconds of the epochs so far), then the final metrics."""
    path, elapsed, step = os.path.join(folder, "history.csv"), 0.0, 0
    if os.path.exists(path):
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                step = int(row.pop("epoch"))
                elapsed += float(row.get("seconds") or 0.0)
                for key, value in row.items():
                    if value not in ("", None):
                        yield key, float(value), start + int(elapsed * 1000), step
    for key, value in (info.get("metrics") or {}).items():
        if isinstance(value, int | float) and math.isfinite(value):
            yield f"final.{key}", float(value), start + int(elapsed * 1000), step
