"""Standard output that goes away, through the real CLI: a reader that closed its end
of the pipe (`| head -1`) ends nothing and changes no exit status; a full disk
(`> /dev/full`) is a one-line error, never a traceback."""

import os
import shutil
import subprocess
import sys

import pytest
from conftest import CONFIGS, ROOT

ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def copy(tmp_path, *names):
    for name in names:
        shutil.copy(CONFIGS / name, tmp_path / name)


def into_closed_pipe(*args):
    """Run the CLI with its standard output on a pipe whose reading end is already
    closed, so its every write fails with EPIPE: (exit code, stderr)."""
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([sys.executable, "-m", "runner", *map(str, args)], stdout=write,
                              stderr=subprocess.PIPE, text=True, env=ENV, timeout=300)
    finally:
        os.close(write)
    return proc.returncode, proc.stderr


def test_a_closed_pipe_ends_quietly_with_the_runs_status(tmp_path):
    copy(tmp_path, "xor.yaml", "xor.csv")
    code, err = into_closed_pipe("run", "--config", "xor.yaml", "--out", "runs", "--quiet")
    assert (code, err) == (0, "")
    info = next((tmp_path / "runs" / "xor").glob("*/run.json")).read_text()
    assert '"status": "complete"' in info


def test_a_closed_pipe_keeps_the_exit_status_of_a_failed_sweep(tmp_path):
    copy(tmp_path, "puzzle.yaml", "puzzle.csv", "puzzle_query.csv")
    code, err = into_closed_pipe("run", "--config", "puzzle.yaml", "--quiet", "--set",
                                 "sweep={grid: {train.optimizer.lr: [0.001, 10.0]}, "
                                 "metric: loss, mode: min}")
    assert code == 1, err
    first, second = err.strip().splitlines()  # the failed trial, named, with its reason
    assert first == "Error: 1 of 2 trials failed:", err
    assert second.startswith("  runs/puzzle/") and "not finite" in second, err


def test_head_1(tmp_path):
    copy(tmp_path, "xor.yaml", "xor.csv")
    line = f"set -o pipefail; {sys.executable} -m runner run --config xor.yaml | head -1"
    proc = subprocess.run(["bash", "-c", line], capture_output=True, text=True, env=ENV,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("complete: runs/xor/") and proc.stdout.count("\n") == 1
    assert "Traceback" not in proc.stderr and "Error" not in proc.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
@pytest.mark.parametrize("args", [["run", "--config", "xor.yaml", "--quiet"], ["schema"]])
def test_a_full_disk_is_one_line(tmp_path, args):
    copy(tmp_path, "xor.yaml", "xor.csv")
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "runner", *args], stdout=full,
                              stderr=subprocess.PIPE, text=True, env=ENV, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr == "Error: cannot write the output: No space left on device\n"
