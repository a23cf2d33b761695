import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"


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


def write(path, text):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
