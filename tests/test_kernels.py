"""The compiled kernels (extra 'fast', numba) against the numpy engine, bit for bit:
each kernel on random inputs with zeros, subnormals and large values, whole training
steps in process, and run folders of the real CLI on every example config, a sweep and
a float64 fit. Also: the numpy path never imports numba, and the switch's messages."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import CONFIGS, ROOT, weights_bytes, yamlnet

from runner.engine import activations, kernels, losses, optimizers
from runner.engine.network import Network

needs_numba = pytest.mark.skipif(not kernels.available(),
                                 reason="numba is not installed (extra 'fast')")
DTYPES = ["float32", "float64"]
SHAPES = [(1, 1), (7, 3), (64, 10), (33, 257)]
PARAMS = {"leaky_relu": {"alpha": 0.2}, "elu": {"alpha": 0.7}}


@pytest.fixture(scope="module")
def ops():
    if not kernels.available():
        pytest.skip("numba is not installed (extra 'fast')")
    return kernels.ops()


def bits(a):
    """An array's bytes, viewed so that two arrays compare bit for bit (NaN included)."""
    a = np.ascontiguousarray(a)
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


def same(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype
    diff = np.flatnonzero(bits(a) != bits(b))
    assert diff.size == 0, f"{diff.size} elements differ, first at {diff[0]}: " \
                           f"{a.ravel()[diff[0]]!r} != {b.ravel()[diff[0]]!r}"


def sample(shape, dtype, seed, extreme=False):
    """Normal values (times 3); with `extreme`, a fifth of them replaced by zeros of both
    signs, subnormals, values around the exp limits and huge ones."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    if extreme:
        tiny = np.finfo(dtype).tiny
        specials = np.array([0.0, -0.0, tiny / 4, -tiny / 8, tiny, 30.0, -30.0, 88.0, -88.0,
                             100.0, -100.0, 710.0, -710.0, 1e30, -1e30, 1e-3], dtype)
        mask = rng.random(shape) < 0.2
        x[mask] = rng.choice(specials, size=int(mask.sum()))
    return x


def cases():
    for dtype in DTYPES:
        for shape in SHAPES:
            for extreme in (False, True):
                yield pytest.param(dtype, shape, extreme, id=f"{dtype}-{shape}-{extreme}")


@pytest.mark.parametrize("name", list(activations.ACTIVATIONS))
@pytest.mark.parametrize("dtype,shape,extreme", list(cases()))
def test_forward_and_derivative_match_numpy_bit_for_bit(ops, name, dtype, shape, extreme):
    if name not in ops.FORWARD and name not in ops.DERIVATIVES:
        pytest.skip(f"{name} has no compiled form (numpy serves it)")
    p = PARAMS.get(name, {})
    Z0 = sample(shape, dtype, 1, extreme)
    b = sample(shape[1:], dtype, 2, extreme)
    for bias in (b, None):
        # numpy: Z += b; f(Z, out, tmp). compiled: one call does both
        Zn, An, Tn = Z0.copy(), np.empty_like(Z0), np.zeros_like(Z0)
        if bias is not None:
            Zn += bias
        activations.ACTIVATIONS[name](Zn, An, Tn, **p)
        if name in ops.FORWARD:
            Zc, Ac, Tc = Z0.copy(), np.empty_like(Z0), np.zeros_like(Z0)
            ops.FORWARD[name](Zc, bias, Ac, Tc, **p)
            same(Zc, Zn)
            same(Ac, An)
            if name == "softmax":  # the row max and row sum the loss value reads
                same(Tc[:, :2], Tn[:, :2])
            Zi = Z0.copy()  # in place, as hidden layers of a forward pass without cache
            ops.FORWARD[name](Zi, bias, Zi, np.zeros_like(Z0), **p)
            same(Zi, An)
        if name in ops.DERIVATIVES:
            dA = sample(shape, dtype, 3, extreme)
            dn, dc = dA.copy(), dA.copy()
            activations.DERIVATIVES[name](Zn, An, dn, np.zeros_like(Z0), **p)
            ops.DERIVATIVES[name](Zn, An, dc, np.zeros_like(Z0), **p)
            same(dc, dn)


@pytest.mark.parametrize("dtype,shape,extreme", list(cases()))
def test_output_gradients_and_bias_sums_match_numpy(ops, dtype, shape, extreme):
    rng = np.random.default_rng(4)
    Z = sample(shape, dtype, 5, extreme)
    A = np.empty_like(Z)
    activations.softmax(Z, A, np.empty_like(Z))
    A[rng.random(shape) < 0.1] = np.finfo(dtype).tiny / 4  # below the gradient's floor
    Y = np.eye(shape[1], dtype=dtype)[rng.integers(0, shape[1], shape[0])]
    for pair, fused in losses.FUSED.items():
        outn, outc = np.empty_like(A), np.empty_like(A)
        fused(Y, A, outn)
        ops.FUSED[pair](Y, A, outc)
        same(outc, outn)
    Yr = sample(shape, dtype, 6, extreme)
    Yr[0, 0] = A[0, 0]  # a zero difference: mae's sign(0)
    for name, derivative in losses.LOSS_DERIVATIVES.items():
        outn, outc = np.empty_like(A), np.empty_like(A)
        derivative(Yr, A, outn)
        ops.LOSS_DERIVATIVES[name](Yr, A, outc)
        same(outc, outn)
    for dZ in (sample(shape, dtype, 7, extreme), np.full(shape, -0.0, dtype)):
        dbn, dbc = np.empty(shape[1], dtype), np.empty(shape[1], dtype)
        np.add.reduce(dZ, axis=0, out=dbn)
        ops.column_sums(dZ, dbc)
        same(dbc, dbn)


def test_column_sums_add_rows_in_order_as_numpy_does(ops):
    """Sums whose value depends on the order of the additions: rows in order from 0."""
    for n, k in [(2, 2), (3, 5), (64, 256), (1000, 3), (4097, 2)]:
        scale = 10.0 ** (np.arange(n) % 9 - 4)[:, None]  # rows of 1e-4 to 1e4
        dZ = (np.random.default_rng(n).standard_normal((n, k)) * scale).astype(np.float32)
        db, ref = np.empty(k, np.float32), np.empty(k, np.float32)
        ops.column_sums(dZ, db)
        np.add.reduce(dZ, axis=0, out=ref)
        same(db, ref)


OPTIMIZERS = [
    ("sgd", {"lr": 0.1}), ("sgd", {"lr": 0.1, "weight_decay": 0.01}),
    ("sgd", {"lr": 0.05, "momentum": 0.9}),
    ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}),
    ("adam", {"lr": 0.01}), ("adam", {"lr": 0.01, "weight_decay": 0.1}),
    ("adamw", {"lr": 0.01}), ("adamw", {"lr": 0.003, "weight_decay": 0.3, "beta1": 0.5}),
    ("rmsprop", {"lr": 0.01}), ("rmsprop", {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.01}),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kw", OPTIMIZERS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(OPTIMIZERS)])
def test_optimizer_steps_match_numpy_over_flushes(ops, name, kw, dtype):
    """70 steps (flushes at 32 and 64) whose gradients vanish for half of the parameters
    after step 5, so that their state decays into subnormal numbers."""
    rng = np.random.default_rng(8)
    P = 301
    start = sample((P,), dtype, 9, extreme=False)
    cls = optimizers.OPTIMIZERS[name]
    pn, pc = start.copy(), start.copy()
    on, oc = cls(pn, **kw), cls(pc, **kw)
    on.use_kernels(False)
    oc.use_kernels(True)
    tiny, subnormal = np.finfo(dtype).tiny, False
    # vanishing: gradients near tiny (momenta decay to subnormals) and near sqrt(tiny)
    # (their squares are subnormal at once); the rest of the order of 1e-2
    scale = np.where(np.arange(P) < P // 4, tiny * 1e3,
                     np.where(np.arange(P) < P // 2, 3 * tiny**0.5, 1e-2))
    for t in range(70):
        g = (rng.standard_normal(P) * scale).astype(dtype)
        if t >= 5:
            g[: P // 2] = 0.0
        g[-3:] = [0.0, -0.0, tiny / 2]
        on.step(g)
        oc.step(g)
        same(pc, pn)
        state = [v for v in on.state().values() if isinstance(v, np.ndarray)]
        subnormal |= any(((v != 0) & (np.abs(v) < tiny)).any() for v in state)
    for key, value in on.state().items():
        if isinstance(value, np.ndarray):
            same(oc.state()[key], value)
    assert oc.state()["t"] == on.state()["t"] == 70
    if state and not kw.get("weight_decay"):  # (an L2 term keeps the state from decaying)
        assert subnormal  # the state met subnormals, and the flushes


LOSS_OF = {"softmax": "categorical_crossentropy", "sigmoid": "binary_crossentropy"}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", list(activations.ACTIVATIONS))
def test_training_steps_match_numpy(ops, hidden, dtype):
    """Five train steps and optimizer steps of a network (this hidden activation, dropout,
    penalties, each output pair), then a forward pass of 3,000 rows (two halves)."""
    rng = np.random.default_rng(10)
    X = rng.standard_normal((3000, 5)).astype(dtype)
    for out, loss in [("softmax", "categorical_crossentropy"), ("sigmoid", "binary_crossentropy"),
                      ("identity", "mse"), ("tanh", "mae")]:
        k = 1 if out == "sigmoid" else 3
        Y = (rng.random((64, k)) < 0.5).astype(dtype)
        if out == "softmax":
            Y = np.eye(k, dtype=dtype)[rng.integers(0, k, 64)]
        nets = []
        for compiled in (False, True):
            net = Network([5, 7, 6, k], [(hidden, PARAMS.get(hidden, {})), ("relu", {}),
                                         (out, {})], [True, False, True], dtype,
                          dropout=[0.25, 0.0, 0.0], penalties=[(0.0, 0.0), (0.01, 0.02), (0, 0)])
            net.initialize(np.random.default_rng(0), [(("xavier_uniform", {}), ("zeros", {}))] * 3)
            net.rng = np.random.default_rng(1)
            opt = optimizers.Adam(net.params, lr=0.01)
            net.use_kernels(compiled)
            opt.use_kernels(compiled)
            values = []
            for step in range(5):
                values.append(net.train_step(X[step * 64:(step + 1) * 64], Y, loss))
                opt.step(net.grads)
            nets.append((net, values, net.forward(X).copy()))
        (a, va, fa), (b, vb, fb) = nets
        assert va == vb
        same(b.params, a.params)
        same(b.grads, a.grads)
        same(fb, fa)


# --- the command line --------------------------------------------------------------
def folder_contents(out):
    """{relative path: bytes} of every run folder under `out`, without what measures
    time: the seconds column of history.csv and sweep.csv, and started, finished,
    seconds and the digest of history.csv in run.json (and its argv, the command)."""
    found = {}
    for path in sorted(Path(out).rglob("*")):
        if not path.is_file() or path.name.startswith(".") or path.suffix == ".lock":
            continue
        rel = str(path.relative_to(out))
        if path.name == "history.csv":
            rows = [r.split(",") for r in path.read_text().splitlines()]
            keep = [i for i, c in enumerate(rows[0]) if c != "seconds"]
            found[rel] = [[r[i] for i in keep] for r in rows]
        elif path.name == "run.json":
            info = json.loads(path.read_text())
            info["sha256"].pop("history.csv", None)  # (of the seconds column too)
            found[rel] = {k: v for k, v in info.items()
                          if k not in ("started", "finished", "seconds", "argv")}
        elif path.name == "sweep.csv":
            rows = [r.split(",") for r in path.read_text().splitlines()]
            keep = [i for i, c in enumerate(rows[0]) if c != "seconds"]
            found[rel] = [[r[i] for i in keep] for r in rows]
        elif path.name == "weights.npz":
            found[rel] = weights_bytes(path)
        elif path.suffix == ".npz":  # a checkpoint: its arrays, and its history untimed
            with np.load(path) as z:
                found[rel] = {k: z[k].tobytes() for k in z.files if k != "meta"}
                meta = json.loads(bytes(z["meta"])) if "meta" in z.files else {}
            for row in meta.get("history", []):
                row.pop("seconds", None)
            found[rel]["meta"] = meta
        else:
            found[rel] = path.read_bytes()
    return found


# the examples, with fewer epochs where they are long (the compiled path runs either way)
EXAMPLES = sorted(p.relative_to(CONFIGS).as_posix() for p in CONFIGS.rglob("*.yaml"))
SHORTER = {"digits.yaml": ["--set", "train.epochs=5"], "iris.yaml": ["--set", "train.epochs=40"],
           "halving.yaml": ["--set", "train.epochs=12"],  # rungs at 4 and 12 epochs
           "family/iris_sweep.yaml": ["--set", "train.epochs=40"],
           "xor_sweep.yaml": ["--set", "train.epochs=100"]}


@needs_numba
@pytest.mark.slow
@pytest.mark.parametrize("config", EXAMPLES)
def test_example_run_folders_are_identical_on_both_paths(config, tmp_path):
    src = tmp_path / "configs"
    shutil.copytree(CONFIGS, src)
    extra = SHORTER.get(config, [])
    got = {}
    for mode in ("numpy", "compiled"):
        code, out, err = yamlnet("run", "--config", src / config, "--out", tmp_path / mode,
                                 "--quiet", *extra, cwd=tmp_path, env={kernels.ENV: mode})
        if code == 2 and "pip install" in err:
            pytest.skip(f"{config} needs an optional extra: {err.strip()}")
        assert code == 0, err
        got[mode] = folder_contents(tmp_path / mode)
    assert got["numpy"] and got["compiled"] == got["numpy"]


@needs_numba
@pytest.mark.slow
def test_sweep_on_workers_and_float64_fit_are_identical_on_both_paths(tmp_path):
    """The xor sweep and iris in float64 (with RMSprop), each with --kernels compiled
    and --workers 2 (the workers inherit the switch) against YAMLNET_KERNELS=numpy."""
    src = tmp_path / "configs"
    shutil.copytree(CONFIGS, src)
    runs = {
        "sweep": ["--config", src / "xor_sweep.yaml", "--set", "train.epochs=50"],
        "f64": ["--config", src / "iris.yaml", "--set", "dtype=float64", "--set",
                "train.epochs=30", "--set", "train.optimizer.name=rmsprop"],
    }
    for name, args in runs.items():
        code, _, err = yamlnet("run", *args, "--out", tmp_path / name / "numpy", "--quiet",
                               cwd=tmp_path, env={kernels.ENV: "numpy"})
        assert code == 0, err
        code, _, err = yamlnet("run", *args, "--out", tmp_path / name / "compiled", "--quiet",
                               "--kernels", "compiled", "--workers", "2", cwd=tmp_path)
        assert code == 0, err
        numpy_run = folder_contents(tmp_path / name / "numpy")
        assert len(numpy_run) >= 5
        assert folder_contents(tmp_path / name / "compiled") == numpy_run
    weights = np.load(next((tmp_path / "f64" / "compiled").rglob("weights.npz")))
    assert weights["layers.0.W"].dtype == np.float64


PROBE = """
import sys
from runner.cli import main
try:
    main()
except SystemExit as e:
    print("numba imported:", "numba" in sys.modules, file=sys.stderr)
    raise
"""


def test_the_numpy_path_never_imports_numba(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    shutil.copy(CONFIGS / "xor.yaml", tmp_path)
    shutil.copy(CONFIGS / "xor.csv", tmp_path)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for mode in ("numpy", ""):  # forced, and auto for a fit too small to pay
        env[kernels.ENV] = mode
        proc = subprocess.run([sys.executable, str(probe), "run", "--config", "xor.yaml",
                               "--out", f"runs{mode}", "--quiet"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "numba imported: False" in proc.stderr


HIDE_NUMBA = """
import importlib.abc, importlib.util, sys
real = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a: None if name.split(".")[0] == "numba" else real(name, *a)
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "numba":
            raise ImportError("no numba here")
sys.meta_path.insert(0, Hide())
from runner.cli import main
main()
"""


def test_compiled_without_numba_is_one_message_and_exit_2(tmp_path):
    script = tmp_path / "hide.py"
    script.write_text(HIDE_NUMBA)
    shutil.copy(CONFIGS / "xor.yaml", tmp_path)
    shutil.copy(CONFIGS / "xor.csv", tmp_path)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for args, extra_env in [(["--kernels", "compiled"], {}), ([], {kernels.ENV: "compiled"})]:
        proc = subprocess.run([sys.executable, str(script), "run", "--config", "xor.yaml",
                               *args], cwd=tmp_path, env=dict(env, **extra_env),
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert "numba" in proc.stderr and "yamlnet[fast]" in proc.stderr
        assert "Traceback" not in proc.stderr
        assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.npz"))
    proc = subprocess.run([sys.executable, str(script), "run", "--config", "xor.yaml",
                           "--quiet", "--out", "fine"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr  # auto without numba: the numpy path


def test_a_bad_kernels_value_is_a_user_error(tmp_path):
    shutil.copy(CONFIGS / "xor.yaml", tmp_path)
    shutil.copy(CONFIGS / "xor.csv", tmp_path)
    code, _, err = yamlnet("run", "--config", "xor.yaml", cwd=tmp_path,
                           env={kernels.ENV: "fast"})
    assert code == 2 and "YAMLNET_KERNELS='fast'" in err and "numpy, compiled, auto" in err
    assert "Traceback" not in err
    code, _, err = yamlnet("run", "--config", "xor.yaml", "--kernels", "fast", cwd=tmp_path)
    assert code == 2 and "--kernels" in err


def test_auto_picks_compiled_only_for_big_fits(monkeypatch):
    net = Network([100, 256, 128, 10], [("relu", {}), ("relu", {}), ("softmax", {})],
                  [True] * 3)
    monkeypatch.delenv(kernels.ENV, raising=False)
    small = kernels.fit_work(net, 4, 4, 2000)  # xor-sized
    assert small == 2000 * 4 * (100 * 256 + 256 * 128 + 128 * 10)
    assert kernels.wanted(small / 1000) is False
    big = kernels.fit_work(net, 100_000, 64, 10)
    assert kernels.wanted(big) is kernels.available()
    assert kernels.wanted(None) is False  # a forward pass: numpy unless asked
    monkeypatch.setenv(kernels.ENV, "numpy")
    assert kernels.wanted(big) is False and kernels.initial() is False


@needs_numba
@pytest.mark.slow
def test_first_compiled_run_says_it_compiles_once(tmp_path):
    """A fresh cache (NUMBA_CACHE_DIR, which numba prefers to any other place): the
    first run says it compiles, the second loads the cache silently."""
    shutil.copy(CONFIGS / "xor.yaml", tmp_path)
    shutil.copy(CONFIGS / "xor.csv", tmp_path)
    env = {kernels.ENV: "compiled", "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    messages = []
    for out in ("a", "b"):
        code, _, err = yamlnet("run", "--config", "xor.yaml", "--out", out, "--quiet",
                               cwd=tmp_path, env=env)
        assert code == 0, err
        messages.append(err.count("compiling yamlnet's kernels"))
    assert messages == [1, 0]
    assert any((tmp_path / "cache").rglob("*.nbi"))


READ_ONLY = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" "$1" && shift && exec "$@"'


def read_only(folder, *cmd):
    """cmd, run in a private mount namespace where `folder` is mounted read-only."""
    return ["unshare", "--mount", "sh", "-c", READ_ONLY, "sh", str(folder), *map(str, cmd)]


@needs_numba
@pytest.mark.slow
def test_a_read_only_install_caches_in_the_users_folder(tmp_path):
    """The package in a read-only folder (a read-only bind mount): numba caches in the
    user's cache folder instead, and the second run loads from there silently."""
    install = tmp_path / "install"
    for pkg in ("runner", "schemas"):
        shutil.copytree(ROOT / pkg, install / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    probe = subprocess.run(read_only(install, "touch", install / "x"), capture_output=True,
                           text=True)
    if not shutil.which("unshare") or "Read-only" not in probe.stderr:
        pytest.skip(f"cannot mount a folder read-only here: {probe.stderr.strip()[:200]}")
    shutil.copy(CONFIGS / "xor.yaml", tmp_path)
    shutil.copy(CONFIGS / "xor.csv", tmp_path)
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(PYTHONPATH=str(install), HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"),
               PYTHONDONTWRITEBYTECODE="1", **{kernels.ENV: "compiled"})
    errs = []
    for out in ("a", "b"):
        proc = subprocess.run(read_only(install, sys.executable, "-m", "runner", "run",
                                        "--config", "xor.yaml", "--out", out, "--quiet"),
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        errs.append(proc.stderr)
    assert "compiling" in errs[0] and "compiling" not in errs[1]
    assert not list(install.rglob("*.nbi"))
    assert list((home / ".cache").rglob("*.nbi"))


def test_the_command_line_sets_the_variable_the_engine_reads():
    from runner import cli

    assert cli.KERNELS_ENV == kernels.ENV  # --kernels is set before numpy is imported
