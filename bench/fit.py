"""Fit cases: yamlnet against scikit-learn's MLPClassifier, a PyTorch eager loop and the
matrix multiplies alone, on the same data, layers, optimizer, batch size and epochs.

Each contender is a trainer with `epoch() -> seconds` and `scores(X) -> (n, k)`; the
caller runs their epochs in turns (one epoch of each, then the next round), so that a
slow spell of the machine falls on all of them alike.
"""

import time
import warnings

import numpy as np

LAYERS = [(256, "relu"), (128, "relu"), (10, "softmax")]
OPTIMIZERS = {"sgd": {"name": "sgd", "lr": 0.01, "momentum": 0.9},
              "adam": {"name": "adam", "lr": 0.001}}


def synthetic(n, d=100, k=10, seed=0):
    """Features (n, d) float32 and labels (n,) of a random linear teacher (argmax of
    X @ W), keeping only rows whose two best classes are apart by a margin, so that
    every contender learns the task within a few epochs and their accuracies can be
    compared."""
    rng = np.random.default_rng(seed)
    W = np.random.default_rng(12345).standard_normal((d, k))
    X = rng.standard_normal((2 * n, d), dtype=np.float32)
    logits = X @ W
    top = np.sort(logits, axis=1)
    keep = np.flatnonzero(top[:, -1] - top[:, -2] > 2.0)[:n]
    return np.ascontiguousarray(X[keep]), logits[keep].argmax(axis=1)


def accuracy(scores, y):
    return float(np.mean(np.asarray(scores).argmax(axis=1) == y))


def config(n_inputs, layers, optimizer, batch, epochs=1, seed=0, dropout=0.0, clip=None):
    """A validated yamlnet config (as from a YAML file) for these layers and fit; with
    dropout on the hidden layers and clip ({"norm": x}) when given."""
    from schemas import load_config_dict

    hidden = len(layers) - 1
    return load_config_dict({
        "name": "bench", "seed": seed, "dtype": "float32", "data": {"path": "unused.npy"},
        "model": {"inputs": n_inputs, "layers": [  # yamlnet's default init, xavier_uniform
            {"units": u, "activation": a, "dropout": dropout if i < hidden else 0.0}
            for i, (u, a) in enumerate(layers)]},
        "train": {"loss": "categorical_crossentropy", "optimizer": optimizer,
                  "epochs": epochs, "batch_size": batch, "clip": clip},
    })


class Yamlnet:
    """The library's own fit loop (runner.train.fit), one epoch per call, on numpy's
    kernels (`kernels = False`) or on the compiled ones (True, the Compiled trainer)."""

    kernels = False

    def __init__(self, X, y, layers, optimizer, batch, seed=0, cfg=None):
        from runner.runs import build

        cfg = cfg or config(X.shape[1], layers, optimizer, batch, seed=seed)
        init_rng, _, self.rng = build.generators(seed)
        self.net = build.network(cfg, X.shape[1])
        build.initial_weights(self.net, cfg, init_rng)
        self.optimizer = build.optimizer(cfg, self.net)
        self.net.use_kernels(self.kernels)
        self.optimizer.use_kernels(self.kernels)
        self.spec = cfg.train.model_copy(update={"epochs": 1, "metrics": [],
                                                 "early_stopping": None})
        self.clip, self.drop_rng = build.clip(cfg), build.dropout_generator(seed)
        self.X, self.Y = X, np.eye(layers[-1][0], dtype=np.float32)[y]

    def epoch(self):
        from runner.engine import train

        result = train.fit(self.net, self.optimizer, self.X, self.Y, self.spec, self.rng,
                           clip=self.clip, drop_rng=self.drop_rng)
        return result.history[0]["seconds"]

    def scores(self, X):
        return np.concatenate([self.net.forward(X[i:i + 4096]).copy()
                               for i in range(0, len(X), 4096)])


class Compiled(Yamlnet):
    """The same fit on the compiled kernels (extra 'fast', numba)."""

    kernels = True


class Sklearn:
    """MLPClassifier on float32 input; one partial_fit (one shuffled epoch) per call."""

    def __init__(self, X, y, layers, optimizer, batch, seed=0):
        from sklearn.neural_network import MLPClassifier

        kw = ({"momentum": optimizer.get("momentum", 0.0), "nesterovs_momentum": False}
              if optimizer["name"] == "sgd" else {})
        self.clf = MLPClassifier(
            hidden_layer_sizes=[u for u, _ in layers[:-1]], activation=layers[0][1],
            solver=optimizer["name"], alpha=0.0, batch_size=batch, learning_rate="constant",
            learning_rate_init=optimizer["lr"], shuffle=True, random_state=seed, **kw)
        self.X, self.y, self.classes = X, y, np.arange(layers[-1][0])

    def epoch(self):
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            started = time.perf_counter()
            self.clf.partial_fit(self.X, self.y, classes=self.classes)
            return time.perf_counter() - started

    def scores(self, X):
        return self.clf.predict_proba(X)


def torch_model(torch, d, layers):
    """nn.Sequential of Linear layers and their activations; a softmax output is left to
    the loss (the model returns logits)."""
    acts = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid}
    mods, fan_in = [], d
    for units, act in layers:
        mods.append(torch.nn.Linear(fan_in, units))
        if act in acts:
            mods.append(acts[act]())
        fan_in = units
    return torch.nn.Sequential(*mods)


class Torch:
    """A PyTorch CPU eager loop on `threads` threads (2, or bench/run.py's --threads):
    randperm, index each batch, zero_grad, cross_entropy, backward, step."""

    threads = 2

    def __init__(self, X, y, layers, optimizer, batch, seed=0):
        import torch

        torch.set_num_threads(self.threads)
        torch.manual_seed(seed)
        self.torch, self.batch = torch, batch
        self.model = torch_model(torch, X.shape[1], layers)
        if optimizer["name"] == "sgd":
            self.opt = torch.optim.SGD(self.model.parameters(), lr=optimizer["lr"],
                                       momentum=optimizer.get("momentum", 0.0))
        else:
            self.opt = torch.optim.Adam(self.model.parameters(), lr=optimizer["lr"])
        self.X, self.y = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))

    def epoch(self):
        torch, model, opt, batch = self.torch, self.model, self.opt, self.batch
        started = time.perf_counter()
        order, total = torch.randperm(len(self.X)), 0.0
        for start in range(0, len(self.X), batch):
            idx = order[start:start + batch]
            xb, yb = self.X[idx], self.y[idx]
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        return time.perf_counter() - started

    def scores(self, X):
        with self.torch.no_grad():
            return self.model(self.torch.from_numpy(X)).numpy()


class Floor:
    """Only the matrix multiplies of a fit, into preallocated buffers: per minibatch the
    forward A_{i-1} @ W_i, and backward A_{i-1}.T @ dZ_i for every layer and dZ_i @ W_i.T
    for all but the first; no gather, bias, activation, loss or update."""

    def __init__(self, X, y, layers, optimizer, batch, seed=0):
        rng = np.random.default_rng(seed)
        sizes = [X.shape[1]] + [u for u, _ in layers]
        self.W = [rng.standard_normal((a, b), dtype=np.float32) * 0.05
                  for a, b in zip(sizes, sizes[1:])]
        self.dW = [np.empty_like(w) for w in self.W]
        self.Z = [np.empty((batch, u), np.float32) for u in sizes[1:]]
        self.dA = [np.empty((batch, u), np.float32) for u in sizes[1:]]
        self.X, self.batch = X, batch

    def epoch(self):
        X, W, Z, dA, dW, batch = self.X, self.W, self.Z, self.dA, self.dW, self.batch
        n = len(X)
        started = time.perf_counter()
        for start in range(0, n, batch):
            m = min(batch, n - start)
            A = X[start:start + m]
            for i, w in enumerate(W):
                A = np.matmul(A, w, out=Z[i][:m])
            dZ = Z[-1][:m]
            for i in range(len(W) - 1, -1, -1):
                A_in = X[start:start + m] if i == 0 else Z[i - 1][:m]
                np.matmul(A_in.T, dZ, out=dW[i])
                if i > 0:
                    dZ = np.matmul(dZ, W[i].T, out=dA[i - 1][:m])
        return time.perf_counter() - started

    def scores(self, X):
        return None


TRAINERS = {"yamlnet": Yamlnet, "compiled": Compiled, "floor": Floor, "sklearn": Sklearn,
            "torch": Torch}


def trainers():
    """TRAINERS, without Compiled when numba is not installed."""
    from runner.engine import kernels

    return {k: v for k, v in TRAINERS.items() if k != "compiled" or kernels.available()}


def blas_threads(n):
    """A context holding BLAS to n threads (threadpoolctl); n None leaves it as it is."""
    from contextlib import nullcontext

    if n is None:
        return nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n, user_api="blas")


def in_turns(trainers, epochs):
    """One epoch of every trainer per round, `epochs` rounds: {name: [seconds, ...]}."""
    seconds = {name: [] for name in trainers}
    for _ in range(epochs):
        for name, trainer in trainers.items():
            seconds[name].append(trainer.epoch())
    return seconds


def digits(root, seeds, epochs=60):
    """configs/digits.yaml (64 relu -> 10 softmax, adam, batch 64, minmax scaling, 20% held
    out) fitted by yamlnet on each seed's split; the same rows, scaling, layers, optimizer,
    batch size and epochs given to MLPClassifier and to PyTorch. Returns the mean
    validation accuracy over `seeds` and the median seconds per epoch of each."""
    from runner.runs import build, prepare
    from schemas import load_config

    accs, seconds = {}, {}
    for seed in seeds:
        cfg = load_config(str(root / "configs" / "digits.yaml"), overrides=[f"seed={seed}"])
        prep = prepare.training_data(cfg, build.generators(seed)[1])
        layers = [(layer.units, layer.activation.name) for layer in cfg.model.layers]
        opt = {"name": "adam", "lr": cfg.train.optimizer.lr}
        y, (Xv, Yv) = prep.Y.argmax(axis=1), prep.val
        trainers = {"yamlnet": Yamlnet(prep.X, y, layers, opt, cfg.train.batch_size, seed, cfg)}
        for name in ("sklearn", "torch"):
            trainers[name] = TRAINERS[name](prep.X, y, layers, opt, cfg.train.batch_size, seed)
        for name, secs in in_turns(trainers, epochs).items():
            seconds.setdefault(name, []).extend(secs[1:])
            accs.setdefault(name, []).append(accuracy(trainers[name].scores(Xv), Yv.argmax(axis=1)))
    return ({name: float(np.mean(v)) for name, v in accs.items()},
            {name: float(np.median(v)) for name, v in seconds.items()})
