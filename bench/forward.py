"""Forward cases: 1,000,000 x 100 rows through 100 -> 256 -> 256 -> 10 (tanh, tanh,
softmax) in batches of 4096, from memory and from a .npy file, by yamlnet, PyTorch and
the matrix multiplies alone; then `yamlnet run` end to end, `predict` from a CSV, the
peak memory of large forward passes and the start-up time of a small fit.

Each pass runner returns the seconds of one pass over all rows.
"""

import os
import subprocess
import sys
import time

import numpy as np

LAYERS = [(256, "tanh"), (256, "tanh"), (10, "softmax")]
BATCH = 4096


def network(d, layers=LAYERS, seed=0):
    """A yamlnet Network with initial weights drawn as `yamlnet run` would."""
    from fit import config

    from runner.runs import build

    cfg = config(d, layers, "adam", 64, seed=seed)
    net = build.network(cfg, d)
    build.initial_weights(net, cfg, build.generators(seed)[0])
    return net


def compiled_network(d, layers=LAYERS, seed=0):
    """network() on the compiled kernels, or None without numba (extra 'fast')."""
    from runner.engine import kernels

    if not kernels.available():
        return None
    net = network(d, layers, seed)
    net.use_kernels(True)
    return net


def yamlnet_memory(net, X, batch=BATCH):
    started = time.perf_counter()
    for start in range(0, len(X), batch):
        net.forward(X[start:start + batch])
    return time.perf_counter() - started


def yamlnet_npy(net, path, batch=BATCH):
    """The streaming reader (block reads of the .npy) feeding the forward pass."""
    from runner.io import data

    started = time.perf_counter()
    for X in data.stream(path, batch_size=batch, dtype="float32"):
        net.forward(X)
    return time.perf_counter() - started


def floor(net, X, batch=BATCH):
    """Only the matrix multiplies of the forward pass, into preallocated buffers."""
    W = [np.ascontiguousarray(w) for w in net.W]
    Z = [np.empty((batch, w.shape[1]), np.float32) for w in W]
    started = time.perf_counter()
    for start in range(0, len(X), batch):
        A = X[start:start + batch]
        m = len(A)
        for w, z in zip(W, Z):
            A = np.matmul(A, w, out=z[:m])
    return time.perf_counter() - started


class Torch:
    """The same network in PyTorch (2 threads, no_grad), batches from memory or sliced
    from a memory-mapped .npy."""

    def __init__(self, net, layers=LAYERS):
        import torch
        from fit import torch_model

        torch.set_num_threads(2)
        self.torch = torch
        self.model = torch_model(torch, net.sizes[0], layers).eval()
        with torch.no_grad():
            linears = [m for m in self.model if isinstance(m, torch.nn.Linear)]
            for lin, W, b in zip(linears, net.W, net.b):
                lin.weight.copy_(torch.from_numpy(W.T.copy()))
                lin.bias.copy_(torch.from_numpy(b.copy()))

    def run(self, X, batch=BATCH, copy=False):
        torch = self.torch
        started = time.perf_counter()
        with torch.inference_mode():
            for start in range(0, len(X), batch):
                xb = X[start:start + batch]
                xb = torch.from_numpy(np.array(xb) if copy else xb)  # a memmap is read-only
                torch.softmax(self.model(xb), 1)
        return time.perf_counter() - started

    def memory(self, X):
        return self.run(X)

    def npy(self, path):
        return self.run(np.load(path, mmap_mode="r"), copy=True)


_WRAPPER = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
            "sys.exit(code)")


def yamlnet_cli(*args, rss=False):
    """Run `python -m runner ARGS`: its wall seconds, and with rss=True its peak resident
    set size in bytes. A child's peak counts what it inherited at fork (Linux keeps the
    high-water mark across exec), so the peak is read through a small wrapper process
    that starts yamlnet itself, rather than from this large process."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    cmd = [sys.executable, "-m", "runner", *args]
    if rss:
        cmd = [sys.executable, "-c", _WRAPPER] + cmd
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(f"yamlnet {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    if not rss:
        return seconds
    return seconds, int(proc.stderr.strip().splitlines()[-1]) * 1024


def forward_config(folder, name, data_path, fmt="npy", layers=LAYERS, batch=BATCH):
    """A forward-only config (no train section) over data_path; returns its path."""
    lines = [f"name: {name}", "seed: 0", "dtype: float32", "data:", f"  path: {data_path}",
             "model:", "  layers:"]
    lines += [f"    - {{units: {u}, activation: {a}}}" for u, a in layers]
    lines += ["predict:", f"  batch_size: {batch}", f"  format: {fmt}"]
    path = os.path.join(folder, f"{name}.yaml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def end_to_end(folder, big, small, out):
    """`yamlnet run` of a forward-only config over `big` minus the same over `small`
    (start-up aside), each into a fresh --out so that hashing is included: seconds."""
    times = []
    for name, path in (("e2e_big", big), ("e2e_small", small)):
        cfg = forward_config(folder, name, path)
        times.append(yamlnet_cli("run", "--config", cfg, "--out", os.path.join(out, name),
                                 "--force", "--quiet"))
    return times[0] - times[1], times


def write_csv(path, n, d, seed=0, target_bytes=None):
    """A CSV with a header and n rows of d features ('%.6g'); with target_bytes, a block of
    rows is repeated until the file reaches that size. Returns the number of rows."""
    rng = np.random.default_rng(seed)
    block = rng.standard_normal((min(n, 20000) if n else 20000, d)).astype(np.float32)
    text = "\n".join(",".join(f"{v:.6g}" for v in row) for row in block.tolist()) + "\n"
    rows = 0
    with open(path, "w") as f:
        f.write(",".join(f"x{j}" for j in range(d)) + "\n")
        while (rows < n) if target_bytes is None else (f.tell() < target_bytes):
            f.write(text)
            rows += len(block)
    return rows


def startup(root, out, repeats=3):
    """Wall seconds of `yamlnet run --config configs/xor.yaml` (a 2000-epoch fit), median
    of `repeats` fresh runs."""
    cfg = str(root / "configs" / "xor.yaml")
    times = [yamlnet_cli("run", "--config", cfg, "--out", out, "--force", "--quiet")
             for _ in range(repeats)]
    return float(np.median(times)), times
