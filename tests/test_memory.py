"""Peak memory of forward passes over large files (docs/data.md): `yamlnet run` streams its
input, so its peak resident set size does not grow with the file. A fit holds its rows
once, and with data.memory: map not at all (issue 14).

Each run's peak is read in a small wrapper process that starts yamlnet (Linux keeps a
child's high-water mark across exec, so a child of the large pytest process would report
pytest's own memory). The 1 GB CSV of issue 5 is measured by `bench/run.py` (case
`memory`); here a CSV ten times smaller than that shows the same flat profile.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, write

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in KiB: Linux")]

MB = 1024 * 1024
WRAPPER = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
           "sys.exit(code)")


def peak_rss(config, out):
    """Peak RSS in bytes of `yamlnet run --config config` in its own process."""
    proc = subprocess.run([sys.executable, "-c", WRAPPER, sys.executable, "-m", "runner", "run",
                           "--config", str(config), "--out", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr
    return int(proc.stderr.strip().splitlines()[-1]) * 1024


# Anonymous memory (RssAnon: the heap and numpy's arrays, not the pages of mapped files) of
# a child, polled every 2 ms: an array big enough to matter takes longer than that to fill.
ANON = ("import subprocess, sys, time; p = subprocess.Popen(sys.argv[1:]); peak = 0\n"
        "while p.poll() is None:\n"
        "    try:\n"
        "        with open(f'/proc/{p.pid}/status') as f:\n"
        "            peak = max([peak] + [int(x.split()[1]) for x in f if x.startswith('RssAnon:')])\n"
        "    except OSError:\n"
        "        pass\n"
        "    time.sleep(0.002)\n"
        "print(peak, file=sys.stderr); sys.exit(p.returncode)")


def peak_anon(*args):
    """Peak anonymous memory in bytes of `python ARGS` in its own process."""
    proc = subprocess.run([sys.executable, "-c", ANON, sys.executable, *map(str, args)],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr
    return int(proc.stderr.strip().splitlines()[-1]) * 1024


FIT = """name: held
data: {path: x.npy, targets_path: y.npy, scale: standard, validation_split: 0.2}
model:
  layers:
    - {units: 32, activation: relu}
    - {units: 10, activation: softmax}
train:
  loss: categorical_crossentropy
  optimizer: {name: adam, lr: 0.001}
  epochs: 1
  batch_size: 256
  metrics: [accuracy]
"""


def test_a_fit_holds_its_rows_once_and_a_mapped_fit_not_at_all(tmp_path):
    """One-epoch fits over .npy files of 16 and 48 MiB (x 100 float32 columns, ten
    classes, 20% held out, standardized), in fresh processes. What the larger file adds to
    the peak of anonymous memory, per byte of file, is the cost of holding its rows: at
    most 1.5 (it was 2.8: copies by the split and a float64 temporary of the scaling);
    with data.memory: map at most 0.5 (the rows are not held; the one-hot targets and the
    outputs of an evaluation are, 120 bytes a row against the 400 of the features). The
    fixed costs (imports, read and hash blocks, buffers) cancel out. The weights are the
    same either way. The 191 MiB figure is bench/run.py's (case fit_memory)."""
    rng = np.random.default_rng(0)
    peaks, sizes, weights = {}, {}, {}
    for rows in (40_000, 120_000):
        folder = tmp_path / str(rows)
        folder.mkdir()
        np.save(folder / "x.npy", rng.standard_normal((rows, 100), dtype=np.float32))
        np.save(folder / "y.npy", rng.integers(0, 10, rows))
        sizes[rows] = (folder / "x.npy").stat().st_size
        config = write(folder / "held.yaml", FIT)
        for memory in ("load", "map"):
            peaks[rows, memory] = peak_anon("-m", "runner", "run", "--config", config, "--out",
                                            folder / memory, "--quiet", "--set",
                                            f"data.memory={memory}")
            (run,) = (folder / memory / "held").iterdir()
            weights[rows, memory] = (run.name, (run / "weights.npz").read_bytes())
        assert weights[rows, "load"] == weights[rows, "map"]  # same id, same bytes
    grown = sizes[120_000] - sizes[40_000]
    per_byte = {m: (peaks[120_000, m] - peaks[40_000, m]) / grown for m in ("load", "map")}
    shown = {k: f"{v / MB:.0f} MiB" for k, v in peaks.items()}
    assert per_byte["load"] <= 1.5, (per_byte, shown)
    assert per_byte["map"] <= 0.5, (per_byte, shown)


def forward_config(folder, name, data):
    return write(folder / f"{name}.yaml", f"""
name: {name}
data: {{path: {data}}}
model:
  layers:
    - {{units: 256, activation: tanh}}
    - {{units: 256, activation: tanh}}
    - {{units: 10, activation: softmax}}
predict: {{format: npy}}
""")


def test_forward_over_an_800_mb_npy_peaks_under_150_mb(tmp_path):
    rows = 2_000_000
    array = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.float32,
                                      shape=(rows, 100))
    rng = np.random.default_rng(0)
    for start in range(0, rows, 200_000):
        array[start:start + 200_000] = rng.standard_normal((200_000, 100), dtype=np.float32)
    array.flush()
    del array
    peak = peak_rss(forward_config(tmp_path, "big", "big.npy"), tmp_path / "runs")
    (folder,) = (tmp_path / "runs" / "big").iterdir()
    assert np.load(folder / "predictions.npy", mmap_mode="r").shape == (rows, 10)
    assert peak < 150 * MB, f"peak RSS {peak / MB:.0f} MB"


def test_forward_over_a_csv_does_not_grow_with_the_file(tmp_path):
    block = np.random.default_rng(0).standard_normal((10_000, 100)).astype(np.float32)
    text = "\n".join(",".join(f"{v:.6g}" for v in row) for row in block.tolist()) + "\n"
    header = ",".join(f"x{j}" for j in range(100)) + "\n"
    peaks = {}
    for name, copies in (("small", 1), ("large", 12)):  # about 9 MB and 110 MB
        with open(tmp_path / f"{name}.csv", "w") as f:
            f.write(header + text * copies)
        peaks[name] = peak_rss(forward_config(tmp_path, name, f"{name}.csv"), tmp_path / "runs")
    assert peaks["large"] < 200 * MB, f"peak RSS {peaks['large'] / MB:.0f} MB"
    assert peaks["large"] - peaks["small"] < 25 * MB, {k: v / MB for k, v in peaks.items()}
