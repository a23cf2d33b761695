"""The training toolkit: schedules, clipping, dropout, penalties, class and sample
weights, each checked against PyTorch's definition (when the 'bench' extra is installed)
or an independent computation."""

import numpy as np
import pytest
from conftest import write, yamlnet

from runner.engine import schedules, train
from runner.engine.losses import weighted
from runner.engine.network import Network
from runner.engine.optimizers import SGD

SETTINGS = {
    "step": ("step", {"step_size": 7, "gamma": 0.5}),
    "multistep": ("multistep", {"milestones": [5, 12, 12, 30], "gamma": 0.3}),
    "exponential": ("exponential", {"gamma": 0.93}),
    "cosine": ("cosine", {"t_max": 9, "eta_min": 0.001}),
}


def torch_scheduler(opt, name, params):
    from torch.optim import lr_scheduler as S

    if name == "step":
        return S.StepLR(opt, params["step_size"], params["gamma"])
    if name == "multistep":
        return S.MultiStepLR(opt, params["milestones"], params["gamma"])
    if name == "exponential":
        return S.ExponentialLR(opt, params["gamma"])
    return S.CosineAnnealingLR(opt, params["t_max"], params["eta_min"])


def torch_rates(make, epochs=50, metrics=None):
    t = pytest.importorskip("torch", reason="the 'bench' extra (PyTorch) is not installed")
    opt = t.optim.SGD([t.nn.Parameter(t.zeros(1))], lr=0.1)
    sched = make(opt)
    rates = []
    for epoch in range(epochs):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step(metrics[epoch]) if metrics is not None else sched.step()
    return rates


def our_rates(schedule, epochs=50, metrics=None):
    rates = []
    for epoch in range(epochs):
        rates.append(schedule.lr)
        schedule.step(None if metrics is None else {"val_loss": metrics[epoch]})
    return rates


@pytest.mark.torch
@pytest.mark.parametrize("name", SETTINGS)
def test_schedules_give_pytorchs_rates_over_50_epochs(name):
    expected = torch_rates(lambda opt: torch_scheduler(opt, *SETTINGS[name]))
    assert our_rates(schedules.make(0.1, SETTINGS[name])) == expected  # to the last bit


@pytest.mark.torch
@pytest.mark.parametrize("name", SETTINGS)
def test_warmup_then_schedule_gives_pytorchs_sequential_rates(name):
    def make(opt):
        from torch.optim import lr_scheduler as S

        warm = S.LinearLR(opt, start_factor=0.25, total_iters=4)
        return S.SequentialLR(opt, [warm, torch_scheduler(opt, *SETTINGS[name])], milestones=[4])

    expected = torch_rates(make)
    np.testing.assert_allclose(our_rates(schedules.make(0.1, SETTINGS[name], (4, 0.25))), expected,
                               rtol=1e-15, atol=0)


@pytest.mark.torch
def test_plateau_gives_pytorchs_rates_on_the_same_metrics():
    rng = np.random.default_rng(0)
    metrics = np.concatenate([np.linspace(1, 0.5, 10), 0.5 + 0.01 * rng.random(40)]).tolist()
    params = {"monitor": "val_loss", "factor": 0.5, "patience": 3, "threshold": 1e-3,
              "cooldown": 2, "min_lr": 0.004}

    def make(opt):
        from torch.optim.lr_scheduler import ReduceLROnPlateau

        return ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=3, threshold=1e-3,
                                 cooldown=2, min_lr=0.004)

    expected = torch_rates(make, metrics=metrics)
    got = our_rates(schedules.make(0.1, ("plateau", params), mode="min"), metrics=metrics)
    assert got == expected
    assert len(set(got)) > 3  # the rate did fall, several times


def test_schedule_state_round_trips():
    a = schedules.make(0.1, SETTINGS["cosine"], (3, 0.5))
    for _ in range(5):
        a.step()
    b = schedules.make(0.1, SETTINGS["cosine"], (3, 0.5))
    b.load(a.state())
    assert our_rates(a, 20) == our_rates(b, 20)


# ---- a fit with a schedule, against a PyTorch loop -------------------------------------

def data(n=40, d=3, k=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X, np.tanh(X @ rng.normal(size=(d, k)))


class Spec:
    """The train section's fields train.fit reads."""

    def __init__(self, **kw):
        self.loss, self.epochs, self.batch_size, self.shuffle = "mse", 25, 10, False
        self.metrics, self.early_stopping = [], None
        vars(self).update(kw)


def network(d=3, k=2, dtype="float64", **kw):
    net = Network([d, 5, k], [("tanh", {}), ("identity", {})], [True, True], dtype, **kw)
    net.initialize(np.random.default_rng(1), [(("xavier_uniform", {}), ("normal", {"std": 0.1}))] * 2)
    return net


@pytest.mark.torch
@pytest.mark.parametrize("name", ["cosine", "step"])
def test_fit_with_a_schedule_and_clipping_matches_a_pytorch_loop(name):
    t = pytest.importorskip("torch", reason="the 'bench' extra (PyTorch) is not installed")
    X, Y = data()
    net = network()
    W0 = {k: v.copy() for k, v in net.views.items()}
    opt = SGD(net.params, lr=0.05, momentum=0.9)
    sched = schedules.make(0.05, SETTINGS[name], (3, 0.5))
    train.fit(net, opt, X, Y, Spec(), np.random.default_rng(0), schedule=sched,
              clip=("norm", 0.5))

    lin1, lin2 = t.nn.Linear(3, 5).double(), t.nn.Linear(5, 2).double()
    with t.no_grad():
        for lin, i in ((lin1, 0), (lin2, 1)):
            lin.weight.copy_(t.from_numpy(W0[f"layers.{i}.W"].T))
            lin.bias.copy_(t.from_numpy(W0[f"layers.{i}.b"]))
    params = list(lin1.parameters()) + list(lin2.parameters())
    topt = t.optim.SGD(params, lr=0.05, momentum=0.9)
    from torch.optim import lr_scheduler as S

    tsched = S.SequentialLR(topt, [S.LinearLR(topt, 0.5, total_iters=3),
                                   torch_scheduler(topt, *SETTINGS[name])], milestones=[3])
    Xt, Yt = t.from_numpy(X), t.from_numpy(Y)
    for _ in range(25):
        for s in range(0, 40, 10):
            topt.zero_grad()
            loss = t.nn.functional.mse_loss(lin2(t.tanh(lin1(Xt[s:s + 10]))), Yt[s:s + 10])
            loss.backward()
            t.nn.utils.clip_grad_norm_(params, 0.5)
            topt.step()
        tsched.step()
    np.testing.assert_allclose(net.views["layers.0.W"], lin1.weight.detach().numpy().T, atol=1e-8)
    np.testing.assert_allclose(net.views["layers.1.b"], lin2.bias.detach().numpy(), atol=1e-8)


@pytest.mark.torch
@pytest.mark.parametrize("kind", ["norm", "value"])
def test_clipping_matches_pytorch_on_the_same_gradients(kind):
    t = pytest.importorskip("torch", reason="the 'bench' extra (PyTorch) is not installed")
    rng = np.random.default_rng(3)
    for scale in (0.01, 1.0, 50.0):
        g = rng.normal(size=37) * scale
        ours = g.copy()
        train.clip_gradients(ours, (kind, 0.7))
        p = t.nn.Parameter(t.zeros(37, dtype=t.float64))
        p.grad = t.from_numpy(g.copy())
        (t.nn.utils.clip_grad_norm_ if kind == "norm" else t.nn.utils.clip_grad_value_)([p], 0.7)
        np.testing.assert_allclose(ours, p.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_clipping_by_norm_bounds_the_global_norm():
    g = np.arange(10.0)
    train.clip_gradients(g, ("norm", 1.0))
    assert np.linalg.norm(g) == pytest.approx(1.0, rel=1e-5)
    h = np.full(4, 0.1)
    train.clip_gradients(h, ("norm", 1.0))
    assert (h == 0.1).all()  # under the bound: unchanged


# ---- penalties and weights: finite differences and PyTorch ----------------------------

def numeric_gradient(f, params, eps=1e-6):
    g = np.empty_like(params)
    for i in range(params.size):
        old = params[i]
        params[i] = old + eps
        up = f()
        params[i] = old - eps
        down = f()
        params[i] = old
        g[i] = (up - down) / (2 * eps)
    return g


@pytest.mark.parametrize("loss, out, k", [("mse", "identity", 2),
                                          ("categorical_crossentropy", "softmax", 3),
                                          ("binary_crossentropy", "sigmoid", 1)])
def test_penalties_and_row_weights_match_finite_differences(loss, out, k):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(9, 3))
    if out == "softmax":
        Y = np.eye(k)[rng.integers(0, k, 9)]
    elif out == "sigmoid":
        Y = rng.integers(0, 2, (9, 1)).astype(float)
    else:
        Y = rng.normal(size=(9, k))
    w = rng.uniform(0.2, 3.0, 9)
    net = Network([3, 4, k], [("tanh", {}), (out, {})], [True, True], "float64",
                  penalties=[(0.03, 0.02), (0.0, 0.05)])
    net.initialize(rng, [(("xavier_uniform", {}), ("normal", {"std": 0.1}))] * 2)
    net.train_step(X, Y, loss, w)
    analytic = net.grads.copy()

    def value():
        A = net.forward(X)
        return weighted(loss, Y, net.logits(len(X)), A, w)[0] + net.penalty()

    np.testing.assert_allclose(analytic, numeric_gradient(value, net.params), rtol=1e-5, atol=1e-8)


@pytest.mark.torch
def test_weighted_losses_equal_pytorchs_definitions():
    t = pytest.importorskip("torch", reason="the 'bench' extra (PyTorch) is not installed")
    rng = np.random.default_rng(8)
    Z = rng.normal(size=(12, 3))
    labels = rng.integers(0, 3, 12)
    Y = np.eye(3)[labels]
    class_w = np.array([0.5, 2.0, 1.25])
    A = np.exp(Z) / np.exp(Z).sum(1, keepdims=True)
    ours = weighted("categorical_crossentropy", Y, Z, A, class_w[labels])[0]
    theirs = t.nn.CrossEntropyLoss(weight=t.from_numpy(class_w))(t.from_numpy(Z),
                                                                 t.from_numpy(labels))
    assert ours == pytest.approx(float(theirs), rel=1e-12)
    z, y, w = rng.normal(size=(12, 1)), rng.integers(0, 2, (12, 1)).astype(float), rng.random(12)
    ours = weighted("binary_crossentropy", y, z, 1 / (1 + np.exp(-z)), w)[0]
    theirs = t.nn.BCEWithLogitsLoss(weight=t.from_numpy(w[:, None]))(t.from_numpy(z),
                                                                      t.from_numpy(y))
    assert ours == pytest.approx(float(theirs), rel=1e-12)
    W = rng.normal(size=(4, 3))
    net = Network([4, 3], [("identity", {})], [False], "float64", penalties=[(0.1, 0.2)])
    net.W[0][...] = W
    assert net.penalty() == pytest.approx(0.1 * np.abs(W).sum() + 0.2 * (W**2).sum(), rel=1e-14)


# ---- dropout ----------------------------------------------------------------------------

def test_dropout_keeps_1_minus_p_scales_by_its_inverse_and_is_off_for_predictions():
    p = 0.3
    net = Network([20, 500, 1], [("relu", {}), ("identity", {})], [True, True], "float64",
                  dropout=[p, 0.0])
    net.initialize(np.random.default_rng(0), [(("he_uniform", {}), ("constant", {"value": 0.1}))] * 2)
    net.rng = np.random.default_rng(7)
    X = np.random.default_rng(1).normal(size=(400, 20))
    net.forward(X, train=True)
    A, D, M = net._A[0][:400], net._D[0][:400], net._M[0][:400]
    keep = M > 0
    assert abs(keep.mean() - (1 - p)) < 0.01  # 200,000 draws
    threshold, scale = net.drop_mask(0)
    assert abs(threshold / 65536 - p) <= 1 / 65536 and scale == pytest.approx(1 / (1 - p), rel=1e-4)
    np.testing.assert_array_equal(D, A * keep * scale)
    assert 0.1 < keep[:, :250].mean() / keep[:, 250:].mean() < 10  # no stripe of the mask
    assert D.mean() == pytest.approx(A.mean(), rel=0.02)  # the expected activation is kept
    plain = Network([20, 500, 1], [("relu", {}), ("identity", {})], [True, True], "float64")
    plain.params[...] = net.params
    np.testing.assert_array_equal(net.forward(X), plain.forward(X))  # no mask when predicting


DROPPED = """\
seed: 4
data: {path: d.csv, targets: [y]}
model:
  layers:
    - {units: 16, activation: relu, dropout: 0.4, l2: 0.001}
    - {units: 8, activation: tanh, dropout: 0.2, l1: 0.0005}
    - {units: 1, activation: sigmoid}
train:
  loss: binary_crossentropy
  optimizer: {name: adam, lr: 0.01}
  epochs: 15
  batch_size: 8
  class_weight: balanced
  clip: {norm: 1.0}
  schedule: {name: cosine, t_max: 15}
  warmup: {epochs: 3}
"""


@pytest.mark.slow
def test_runs_with_the_toolkit_are_byte_identical_and_verify(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    lines = ["a,b,c,y"] + [f"{a!r},{b!r},{c!r},{int(a + b > 1)}" for a, b, c in X.tolist()]
    write(tmp_path / "d.csv", "\n".join(lines) + "\n")
    write(tmp_path / "c.yaml", DROPPED)
    for out in ("r1", "r2"):
        code, _, err = yamlnet("run", "--config", tmp_path / "c.yaml", "--out", tmp_path / out)
        assert code == 0, err
    (a,) = (tmp_path / "r1").glob("*/*/weights.npz")
    (b,) = (tmp_path / "r2").glob("*/*/weights.npz")
    assert a.read_bytes() == b.read_bytes()
    code, out, err = yamlnet("verify", a.parent)
    assert code == 0 and "bit-identical" in out, out + err
    with open(a.parent / "history.csv") as f:
        rows = [line.split(",") for line in f.read().splitlines()]
    rates = [float(r[1]) for r in rows[1:]]
    assert rows[0][1] == "lr" and rates[0] == pytest.approx(0.01 / 3) and rates[3] == 0.01
    assert rates[-1] < rates[4]  # the cosine


@pytest.mark.parametrize("edit, where, words", [
    ("dropout: 0.4", "dropout: 1.5", ["model.layers.0.dropout", "< 1"]),
    ("l1: 0.0005", "l1: -1", ["model.layers.1.l1", ">= 0"]),
    ("- {units: 1, activation: sigmoid}", "- {units: 1, activation: sigmoid, dropout: 0.1}",
     ["dropout applies to hidden layers"]),
    ("clip: {norm: 1.0}", "clip: {norm: 1.0, value: 2}", ["exactly one of norm"]),
    ("schedule: {name: cosine, t_max: 15}", "schedule: {name: cosine}", ["t_max"]),
    ("schedule: {name: cosine, t_max: 15}", "schedule: {name: plateau, monitor: val_accuracy}",
     ["train.schedule.monitor", "not recorded"]),
    ("schedule: {name: cosine, t_max: 15}", "schedule: {name: cosin, t_max: 15}",
     ["did you mean 'cosine'"]),
    ("class_weight: balanced", "class_weight: sometimes", ["train.class_weight"]),
])
def test_new_keys_are_validated_with_located_errors(tmp_path, edit, where, words):
    write(tmp_path / "d.csv", "a,b,c,y\n0,0,0,0\n1,1,1,1\n")
    write(tmp_path / "c.yaml", DROPPED.replace(edit, where))
    code, out, err = yamlnet("validate", tmp_path / "c.yaml")
    assert code == 2, out + err
    line = next(i for i, t in enumerate(DROPPED.replace(edit, where).splitlines(), 1) if where in t)
    assert f"c.yaml:{line}:" in err
    for word in words:
        assert word in err


# ---- cross-validation -------------------------------------------------------------------

@pytest.mark.slow
def test_five_folds_of_iris_write_five_folders_and_a_mean_and_spread(tmp_path):
    import csv
    import json
    import shutil

    from conftest import CONFIGS

    shutil.copy(CONFIGS / "iris.csv", tmp_path)
    text = (CONFIGS / "iris.yaml").read_text().replace("validation_split: 0.2", "folds: 5")
    write(tmp_path / "cv.yaml", text.replace("epochs: 200", "epochs: 30"))
    code, out, err = yamlnet("run", "--config", tmp_path / "cv.yaml", "--out", tmp_path / "runs")
    assert code == 0, err
    runs = sorted((tmp_path / "runs" / "iris").glob("*/run.json"))
    assert len(runs) == 5
    infos = [json.loads(p.read_text()) for p in runs]
    folds = sorted(json.loads(json.dumps(i))["id"] for i in infos)
    assert len(set(folds)) == 5
    with open(tmp_path / "runs" / "iris" / "sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(int(r["fold"]) for r in rows) == [0, 1, 2, 3, 4]
    accs = [i["metrics"]["val_accuracy"] for i in infos]
    line = out.splitlines()[-1]
    shown = dict(part.split("=") for part in line.split())
    mean, std = shown["val_accuracy"].split("±")
    assert float(mean) == pytest.approx(np.mean(accs), rel=1e-5)
    assert float(std) == pytest.approx(np.std(accs), abs=0.006)
    assert np.mean(accs) > 0.85


def test_folds_partition_the_rows():
    from runner.runs.prepare import _split
    from schemas import load_config_dict

    held = []
    for fold in range(4):
        config = load_config_dict({"data": {"path": "x.csv", "folds": 4, "fold": fold},
                                   "model": {"layers": [{"units": 1}]}})
        val, train_rows = _split(config, 23, np.random.default_rng(9))
        assert len(np.intersect1d(val, train_rows)) == 0 and len(val) + len(train_rows) == 23
        held.append(val)
    assert sorted(np.concatenate(held).tolist()) == list(range(23))


def test_sample_weights_of_two_equal_duplicated_rows(tmp_path):
    """categorical_crossentropy's weighted mean sum(w l) / sum(w) over full batches: rows
    of weight 2 fit as those rows written twice (weight 1), to float rounding; the weight
    column is not a feature."""
    import json

    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)
    w = np.where(np.arange(30) % 3 == 0, 2.0, 1.0)
    rows = [f"{a!r},{b!r},{c},{k}" for (a, b), c, k in zip(X.tolist(), y, w)]
    write(tmp_path / "weighted.csv", "a,b,y,w\n" + "\n".join(rows) + "\n")
    twice = [f"{a!r},{b!r},{c}" for (a, b), c, k in zip(X.tolist(), y, w) for _ in range(int(k))]
    write(tmp_path / "twice.csv", "a,b,y\n" + "\n".join(twice) + "\n")
    body = """\
model: {{layers: [{{units: 6, activation: tanh}}, {{units: 3, activation: softmax}}]}}
train: {{loss: categorical_crossentropy, optimizer: {{name: sgd, lr: 0.3}}, epochs: 40,
        batch_size: full, shuffle: false}}
data: {{path: {path}, targets: [y]{extra}}}
"""
    for name, extra in (("weighted", ", sample_weight: w"), ("twice", "")):
        write(tmp_path / f"{name}.yaml", body.format(path=f"{name}.csv", extra=extra))
        code, _, err = yamlnet("run", "--config", tmp_path / f"{name}.yaml", "--out",
                               tmp_path / "runs", cwd=tmp_path)
        assert code == 0, err
    from runner.io import weights as weights_file

    a, b = (weights_file.load(next((tmp_path / "runs" / n).glob("*/weights.npz")))
            for n in ("weighted", "twice"))
    assert a["layers.0.W"].shape == (2, 6)  # the weight column is not an input
    assert list(a["classes"]) == list(b["classes"]) == ["0", "1", "2"]
    for key in ("layers.0.W", "layers.0.b", "layers.1.W", "layers.1.b"):
        np.testing.assert_allclose(a[key], b[key], rtol=2e-4, atol=2e-6)
    info = json.loads(next((tmp_path / "runs" / "weighted").glob("*/run.json")).read_text())
    assert info["features"] == ["a", "b"]
