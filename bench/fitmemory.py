"""Peak anonymous memory of a one-epoch fit over a 191 MiB .npy (issue 14): loaded (the
rows held once) and with data.memory: map (the rows read through a memory map).

Anonymous memory (RssAnon: the heap and numpy's arrays, not the pages of mapped files) is
polled every 2 ms in a small wrapper process that starts yamlnet; an array big enough to
matter takes longer than that to fill. Two baselines: an import-only process, and
`yamlnet run --dry-run` of the same config in a fresh --out (every import, the config and
the digest of the file: all that the run does but the fit).
"""

import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MB = 1024 * 1024
ANON = ("import subprocess, sys, time; p = subprocess.Popen(sys.argv[1:]); peak = 0\n"
        "while p.poll() is None:\n"
        "    try:\n"
        "        with open(f'/proc/{p.pid}/status') as f:\n"
        "            peak = max([peak] + [int(x.split()[1]) for x in f if x.startswith('RssAnon:')])\n"
        "    except OSError:\n"
        "        pass\n"
        "    time.sleep(0.002)\n"
        "print(peak, file=sys.stderr); sys.exit(p.returncode)")
CONFIG = """name: held
data: {{path: x.npy, targets_path: y.npy, scale: standard, validation_split: 0.2, memory: {memory}}}
model:
  layers:
    - {{units: 32, activation: relu}}
    - {{units: 10, activation: softmax}}
train:
  loss: categorical_crossentropy
  optimizer: {{name: adam, lr: 0.001}}
  epochs: 1
  batch_size: 256
  metrics: [accuracy]
"""


def peak_anon(*args):
    """Peak anonymous memory in bytes of `python ARGS` in a fresh process."""
    proc = subprocess.run([sys.executable, "-c", ANON, sys.executable, *args], text=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    if proc.returncode:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return int(proc.stderr.strip().splitlines()[-1]) * 1024


def write_data(folder, rows, d=100):
    """x.npy (rows, d) float32 standard normal, written block by block, and y.npy of ten
    classes; returns the size of x.npy in bytes."""
    rng = np.random.default_rng(0)
    path = os.path.join(folder, "x.npy")
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, d))
    for start in range(0, rows, 100_000):
        X[start:start + 100_000] = rng.standard_normal((min(100_000, rows - start), d),
                                                       dtype=np.float32)
    X.flush()
    del X
    np.save(os.path.join(folder, "y.npy"), rng.integers(0, 10, rows))
    return os.path.getsize(path)


def fit_peaks(folder, rows):
    """{"file", "imports", "dry_run", "load", "map"}: bytes of x.npy, peaks of an
    import-only process, of a dry run and of the fit each way; "same_weights": whether
    both fits wrote the same weights.npz into folders of the same id."""
    size = write_data(folder, rows)
    result = {"file": size, "imports": peak_anon(
        "-c", "import numpy, runner.cli, runner.api, runner.runs.experiment")}
    weights = {}
    for memory in ("dry_run", "load", "map"):
        config = os.path.join(folder, f"{memory}.yaml")
        with open(config, "w") as f:
            f.write(CONFIG.format(memory="load" if memory == "dry_run" else memory))
        out = os.path.join(folder, f"runs-{memory}")
        if memory == "dry_run":
            result[memory] = peak_anon("-m", "runner", "run", "--config", config, "--out", out,
                                       "--dry-run")
            continue
        result[memory] = peak_anon("-m", "runner", "run", "--config", config, "--out", out,
                                   "--quiet")
        (run,) = os.listdir(os.path.join(out, "held"))
        with open(os.path.join(out, "held", run, "weights.npz"), "rb") as f:
            weights[memory] = (run, f.read())
    result["same_weights"] = weights["load"] == weights["map"]
    return result
