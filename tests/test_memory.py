"""Peak memory of forward passes over large files (docs/data.md): `yamlnet run` streams its
input, so its peak resident set size does not grow with the file.

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
