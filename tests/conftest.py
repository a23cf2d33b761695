import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"


OURS = ("yamlnet-", "tmp", ".tmp-", "dask-", "pymp-")  # temporaries of yamlnet and its tools


@pytest.fixture(scope="session", autouse=True)
def _no_temporary_files_left(tmp_path_factory):
    """The temporary files of the code under test go to a folder of pytest's (tempfile's
    folder, and TMPDIR for the subprocesses), so none lands outside pytest's folders;
    the session fails if one of yamlnet's is left there (caches of other libraries, such
    as torch's, may stay)."""
    folder = tmp_path_factory.mktemp("tempdir")
    saved = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"] = tempfile.tempdir = str(folder)
    yield folder
    if saved[0] is None:
        del os.environ["TMPDIR"]
    else:
        os.environ["TMPDIR"] = saved[0]
    tempfile.tempdir = saved[1]
    left = sorted(p.name for p in folder.iterdir() if p.name.startswith(OURS))
    assert not left, f"temporary files left behind: {left}"


@pytest.fixture(autouse=True)
def _quiet_cwd(tmp_path, monkeypatch):
    """Every test runs in its own empty folder, so nothing lands in the checkout."""
    monkeypatch.chdir(tmp_path)


def yamlnet(*args, cwd=None, timeout=300, env=None):
    """Run the real CLI in a subprocess: (exit code, stdout, stderr)."""
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    proc = subprocess.run(
        [sys.executable, "-m", "runner", *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env,
    )
    return proc.returncode, proc.stdout, proc.stderr


def example_run(folder, config, data, *overrides):
    """Copy configs/<config> and configs/<data> into `folder`, run it there with the
    `--set` overrides: the complete run folder."""
    for name in (config, data):
        shutil.copy(CONFIGS / name, Path(folder) / name)
    sets = [a for o in overrides for a in ("--set", o)]
    code, out, err = yamlnet("run", "--config", config, "--quiet", *sets, cwd=folder)
    assert code == 0, err
    return Path(folder) / out.split(": ")[1].strip()


def write(path, text):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def weights_bytes(path):
    """The bytes of a weights.npz, once its zip members are seen to carry one fixed stamp
    rather than the time they were written. (Zip stamps have a 2-second resolution: two
    runs made within the same 2 s give the same bytes even when the stamp is the clock's,
    so comparing their bytes alone would not show it.)"""
    with zipfile.ZipFile(path) as zf:
        stamps = {info.date_time for info in zf.infolist()}
    a_day_ago = time.localtime(time.time() - 86400)[:6]  # earlier than now in any time zone
    assert len(stamps) == 1 and max(stamps) < a_day_ago, f"{path}: members stamped {stamps}"
    return Path(path).read_bytes()
