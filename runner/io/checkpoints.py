"""Checkpoints of a fit: one file, `<run>/checkpoint.npz`, written atomically, holding
everything runner.engine.train.fit needs to go on (train.Checkpoint): the arrays as
members and the rest (epoch, history, counters, optimizer step, schedule and generator
states) as JSON text in the member `meta`. A fit resumed from it ends byte-identical to
an uninterrupted one."""

import json
import os

import numpy as np

from runner.io import weights

FILE = "checkpoint.npz"
FORMAT = 1


def save(folder, c, run_id):
    """Write Checkpoint `c` of the run `run_id` into `folder`, atomically."""
    arrays = {"params": c.params}
    if c.best_params is not None:
        arrays["best_params"] = c.best_params
    optimizer = {}
    for key, value in c.optimizer.items():
        if isinstance(value, np.ndarray):
            arrays["optimizer." + key] = value
        else:
            optimizer[key] = value
    meta = {"format": FORMAT, "id": run_id, "epoch": c.epoch, "history": c.history,
            "optimizer": optimizer, "schedule": c.schedule, "rng": c.rng,
            "drop_rng": c.drop_rng, "best": c.best, "wait": c.wait, "best_epoch": c.best_epoch}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    weights.save(os.path.join(folder, FILE), arrays)


def load(folder, run_id):
    """The Checkpoint saved in `folder` for the run `run_id`, or None when there is none
    (or it is unreadable, or of another run: the fit then starts afresh)."""
    from runner.engine.train import Checkpoint

    path = os.path.join(folder, FILE)
    if not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays.pop("meta").tobytes())
    except (OSError, ValueError, KeyError):
        return None
    if meta.get("format") != FORMAT or meta.get("id") != run_id:
        return None
    optimizer = dict(meta["optimizer"])
    optimizer.update({k[len("optimizer."):]: v for k, v in arrays.items()
                      if k.startswith("optimizer.")})
    return Checkpoint(meta["epoch"], meta["history"], arrays["params"], optimizer,
                      meta["schedule"], meta["rng"], meta["drop_rng"], meta["best"], meta["wait"],
                      meta["best_epoch"], arrays.get("best_params"))


def remove(folder):
    try:
        os.remove(os.path.join(folder, FILE))
    except FileNotFoundError:
        pass
