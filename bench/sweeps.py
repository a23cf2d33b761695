"""Sweeps and BLAS threads: the 8-trial digits sweep run by `yamlnet run` alone and with
`--workers 2`, beside scikit-learn's GridSearchCV(MLPClassifier) over the same grid;
and the work per minibatch step from which a second BLAS thread pays in a fit."""

import os
import shutil
import subprocess
import sys
import time

import numpy as np

GRID = {"units": [32, 64], "lr": [0.001, 0.003]}  # x 2 seeds (2 folds for GridSearchCV)
SWEEP = """\
extends: digits.yaml
name: digits_sweep
train:
  epochs: {epochs}
sweep:
  grid:
    model.layers.0.units: {units}
    train.optimizer.lr: {lr}
  seeds: [0, 1]
  metric: val_loss
  mode: min
"""


def sweep_config(root, tmp, epochs):
    """The 8-trial digits sweep in `tmp`: configs/digits.yaml extended by a 2 x 2 grid x 2
    seeds with `epochs` epochs."""
    for name in ("digits.yaml", "digits.csv"):
        shutil.copy(root / "configs" / name, os.path.join(tmp, name))
    path = os.path.join(tmp, "digits_sweep.yaml")
    with open(path, "w") as f:
        f.write(SWEEP.format(epochs=epochs, units=GRID["units"], lr=GRID["lr"]))
    return path


def yamlnet_sweep(root, config, out, workers):
    """Wall seconds of `yamlnet run` of the sweep into a fresh `out` (start-up included)."""
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, PYTHONPATH=str(root))
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "runner", "run", "--config", config, "--out", out,
                    "--quiet", "--workers", str(workers)], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


SKLEARN = """\
import sys, time
import numpy as np
from sklearn.model_selection import GridSearchCV
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import MinMaxScaler
import warnings
warnings.simplefilter("ignore")
started = time.perf_counter()
table = np.loadtxt(sys.argv[1], delimiter=",", skiprows=1)
X, y = MinMaxScaler().fit_transform(table[:, :-1]).astype(np.float32), table[:, -1]
grid = {{"hidden_layer_sizes": [(u,) for u in {units}], "learning_rate_init": {lr}}}
search = GridSearchCV(MLPClassifier(solver="adam", batch_size=64, max_iter={epochs},
                                    n_iter_no_change={epochs}, tol=0, random_state=0),
                      grid, cv=2, n_jobs=int(sys.argv[2]), refit=False)
search.fit(X, y)
print(time.perf_counter() - started)
"""


def sklearn_sweep(tmp, epochs, jobs):
    """Wall seconds of GridSearchCV(MLPClassifier, n_jobs=jobs), in a fresh Python like
    yamlnet's (start-up included): the same grid, epochs and batch size, 2 folds for the
    2 seeds (8 fits)."""
    script = os.path.join(tmp, "grid.py")
    with open(script, "w") as f:
        f.write(SKLEARN.format(units=GRID["units"], lr=GRID["lr"], epochs=epochs))
    started = time.perf_counter()
    subprocess.run([sys.executable, script, os.path.join(tmp, "digits.csv"), str(jobs)],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def step_seconds(batch, width, threads, steps=200):
    """Median seconds of a fit step (forward and backward) of a width -> width ->
    10 relu network over `batch` rows, with BLAS held to `threads` threads."""
    from threadpoolctl import threadpool_limits

    from runner.engine.network import Network

    rng = np.random.default_rng(0)
    net = Network([width, width, 10], [("relu", {}), ("softmax", {})], [True, True])
    zeros = ("zeros", {})
    net.initialize(rng, [(("he_uniform", {}), zeros), (("xavier_uniform", {}), zeros)])
    X = rng.standard_normal((batch, width)).astype(np.float32)
    Y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, batch)]
    times = []
    with threadpool_limits(limits=threads, user_api="blas"):
        for _ in range(steps):
            t = time.perf_counter()
            net.train_step(X, Y, "categorical_crossentropy")
            times.append(time.perf_counter() - t)
    return float(np.median(times[steps // 10:]))


def crossover(shapes):
    """For each (batch, width): (multiply-adds per step, seconds with 1 thread, with 2),
    the two timed in turns."""
    rows = []
    for batch, width in shapes:
        one, two = [], []
        for _ in range(3):
            one.append(step_seconds(batch, width, 1))
            two.append(step_seconds(batch, width, 2))
        rows.append((batch * (width * width + width * 10), float(np.median(one)),
                     float(np.median(two))))
    return rows
