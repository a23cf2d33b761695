"""The config models: the docs/config.md example, defaults, shorthand, strictness, cross-field rules,
the vocabularies and the committed JSON Schema."""

import json
import pathlib
import pickle

import pytest

from schemas import (
    ACTIVATION_NAMES,
    INIT_NAMES,
    LOSS_NAMES,
    METRIC_NAMES,
    OPTIMIZER_NAMES,
    Config,
    ConfigError,
    json_schema,
    load_config,
    load_config_dict,
)

FULL_EXAMPLE = """\
name: xor                  # [A-Za-z0-9_][A-Za-z0-9_.-]* ; default: the file's stem
seed: 0                    # one seed drives init, shuffling and splits
dtype: float32             # float32 | float64

data:
  path: xor.csv            # .csv (header row), .npy, .npz
  features: [x1, x2]
  targets: [y]
  targets_path: null       # for .npy data: a second .npy holding the targets
  scale: none              # none | standard | minmax
  validation_split: 0.25   # the default is 0.0, but early_stopping below monitors val_loss
  validation_path: null    # a separate file with the same columns

model:
  inputs: 2                # optional; inferred from the data, error when they disagree
  weights: null            # optional .npz (format in docs/run-folders.md) to start from
  layers:
    - units: 4
      activation: tanh     # string, or {name: leaky_relu, alpha: 0.1}
      init: xavier_uniform # string, or {name: normal, mean: 0.0, std: 0.05}
      bias_init: zeros
      bias: true
    - units: 1
      activation: sigmoid

train:                     # optional: absent = forward pass only
  loss: binary_crossentropy
  optimizer: {name: sgd, lr: 0.5, momentum: 0.9}   # or just: adam
  epochs: 2000
  batch_size: 4            # integer, or "full"
  shuffle: true
  metrics: [accuracy]
  early_stopping: {monitor: val_loss, patience: 50, min_delta: 0.0, restore_best: true}

predict:
  path: xor.csv
  batch_size: 4096
  format: csv

sweep:                     # optional
  grid:
    model.layers.0.units: [2, 4, 8]
    train.optimizer.lr: [0.1, 0.5]
  random:                  # optional, instead of or beside grid: seeded random search
    samples: 20
    space:
      train.optimizer.lr: {loguniform: [1.0e-4, 1.0e-1]}
      model.layers.0.activation: {choice: [tanh, relu]}
  seeds: [0, 1, 2]         # every grid point / sample once per seed
  metric: val_loss         # what the summary ranks by
  mode: min                # min | max
"""

MINIMAL = {"data": {"path": "xor.csv"}, "model": {"layers": [{"units": 1}]}}


def config(**sections):
    """A small valid config dict with `sections` replaced."""
    data = {"data": {"path": "xor.csv"},
            "model": {"layers": [{"units": 4, "activation": "tanh"},
                                 {"units": 1, "activation": "sigmoid"}]}}
    data.update(sections)
    return data


def messages(data) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_dict(data)
    return [f"{p.path}: {p.message}" for p in info.value.problems]


def test_spec_example_validates(tmp_path):
    (tmp_path / "xor.yaml").write_text(FULL_EXAMPLE)
    cfg = load_config(tmp_path / "xor.yaml")
    assert cfg.name == "xor"
    assert cfg.data.path == str(tmp_path / "xor.csv")
    assert cfg.predict.path == str(tmp_path / "xor.csv")
    assert [layer.activation.name for layer in cfg.model.layers] == ["tanh", "sigmoid"]
    assert cfg.train.optimizer.model_dump() == {
        "name": "sgd", "lr": 0.5, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0}
    assert cfg.sweep.grid == {"model.layers.0.units": [2, 4, 8], "train.optimizer.lr": [0.1, 0.5]}
    assert cfg.sweep.random.space["train.optimizer.lr"].loguniform == [1e-4, 1e-1]
    assert cfg.sweep.seeds == [0, 1, 2]


def test_defaults_are_filled():
    assert Config.model_validate(MINIMAL).model_dump(mode="json") == {
        "name": "config", "seed": 0, "dtype": "float32",
        "data": {"path": "xor.csv", "features": None, "targets": None, "targets_path": None,
                 "scale": "none", "target_scale": "none", "validation_split": 0.0,
                 "validation_path": None, "delimiter": None, "header": True,
                 "na_values": ["", "NA", "N/A", "NaN", "null"], "decimal": ".",
                 "sample_weight": None, "folds": None, "fold": None, "memory": "auto"},
        "model": {"inputs": None, "weights": None, "layers": [
            {"units": 1, "activation": {"name": "identity"}, "init": {"name": "xavier_uniform"},
             "bias_init": {"name": "zeros"}, "bias": True, "dropout": 0.0, "l1": 0.0,
             "l2": 0.0}]},
        "train": None, "predict": None, "sweep": None, "track": None,
    }
    train = Config.model_validate({**MINIMAL, "train": {"loss": "mse"}}).train.model_dump()
    assert train["optimizer"] == {"name": "adam", "lr": 0.001, "beta1": 0.9, "beta2": 0.999,
                                  "eps": 1e-8, "weight_decay": 0.0}
    assert (train["epochs"], train["batch_size"], train["shuffle"], train["metrics"]) == (
        100, 32, True, [])


@pytest.mark.parametrize("given, name", [
    ("tanh", "tanh"), ("linear", "identity"), ("swish", "silu"),
    ({"name": "swish"}, "silu"), ({"name": "elu"}, "elu"),
])
def test_activation_shorthand_and_aliases(given, name):
    layer = {"units": 2, "activation": given}
    cfg = Config.model_validate({**MINIMAL, "model": {"layers": [layer]}})
    assert cfg.model.layers[0].activation.name == name


@pytest.mark.parametrize("given, expected", [
    ("glorot_uniform", {"name": "xavier_uniform"}),
    ("glorot_normal", {"name": "xavier_normal"}),
    ("kaiming_uniform", {"name": "he_uniform"}),
    ("kaiming_normal", {"name": "he_normal"}),
    ("normal", {"name": "normal", "mean": 0.0, "std": 0.05}),
    ({"name": "uniform", "high": 1}, {"name": "uniform", "low": -0.05, "high": 1.0}),
    ("orthogonal", {"name": "orthogonal", "gain": 1.0}),
])
def test_init_shorthand_and_aliases(given, expected):
    cfg = Config.model_validate({**MINIMAL, "model": {"layers": [{"units": 2, "init": given}]}})
    assert cfg.model.layers[0].init.model_dump() == expected


def test_loss_alias_and_optimizer_defaults():
    out = [{"units": 3, "activation": "softmax"}]
    train = {"loss": "cross_entropy", "optimizer": "adamw"}
    cfg = Config.model_validate({**MINIMAL, "model": {"layers": out}, "train": train})
    assert cfg.train.loss == "categorical_crossentropy"
    assert cfg.train.optimizer.weight_decay == 0.01
    rms = Config.model_validate({**MINIMAL, "train": {"loss": "mse", "optimizer": "rmsprop"}})
    assert (rms.train.optimizer.lr, rms.train.optimizer.alpha) == (0.01, 0.99)


def test_vocabularies():
    assert ACTIVATION_NAMES == ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu",
                                "softplus", "gelu", "silu", "softmax")
    assert INIT_NAMES == ("zeros", "ones", "constant", "normal", "uniform", "xavier_uniform",
                          "xavier_normal", "he_uniform", "he_normal", "lecun_uniform",
                          "lecun_normal", "orthogonal")
    assert OPTIMIZER_NAMES == ("sgd", "adam", "adamw", "rmsprop")
    assert LOSS_NAMES == ("mse", "mae", "binary_crossentropy", "categorical_crossentropy")
    assert METRIC_NAMES == ("accuracy", "mse", "mae", "r2")


@pytest.mark.parametrize("field, value, message", [
    ("units", "2", "expected an integer, got the string '2'"),
    ("units", 2.0, "expected an integer, got the float 2.0"),
    ("units", True, "expected an integer, got the boolean true"),
    ("units", 0, "expected a value >= 1, got 0"),
    ("units", 10**12, "expected a value <= 1000000, got 1000000000000"),
    ("bias", "yes", "expected true or false, got the string 'yes'"),
])
def test_no_silent_coercion(field, value, message):
    layer = {"units": 2, field: value}
    assert messages({**MINIMAL, "model": {"layers": [layer]}}) == [
        f"model.layers.0.{field}: {message}"]


def test_numbers_for_floats():
    optimizer = {"name": "sgd", "lr": 1, "momentum": True}
    assert messages(config(train={"loss": "mse", "optimizer": optimizer})) == [
        "train.optimizer.momentum: expected a number, got the boolean true"]
    cfg = load_config_dict(config(train={"loss": "mse", "optimizer": {"name": "sgd", "lr": 1}}))
    assert cfg.train.optimizer.lr == 1.0
    assert messages(config(seed=-1)) == ["seed: expected a value >= 0, got -1"]
    assert messages(config(train={"loss": "mse", "batch_size": 0})) == [
        "train.batch_size: expected a value >= 1 or 'full', got the integer 0"]
    assert load_config_dict(config(train={"loss": "mse", "batch_size": "full"})).train.batch_size \
        == "full"


def test_unknown_names_did_you_mean():
    layer = {"units": 2, "activation": "relux", "init": {"name": "he_uniformm"}}
    assert messages({**MINIMAL, "model": {"layers": [layer]}}) == [
        "model.layers.0.activation: 'relux' is not an activation; did you mean 'relu'? (one of: "
        "identity, sigmoid, tanh, relu, leaky_relu, elu, softplus, gelu, silu, softmax)",
        "model.layers.0.init: 'he_uniformm' is not an initializer; did you mean 'he_uniform'? "
        "(one of: " + ", ".join(INIT_NAMES) + ")",
    ]
    assert messages(config(train={"loss": "mes", "metrics": ["acc"]})) == [
        "train.loss: 'mes' is not a loss; did you mean 'mse'? (one of: mse, mae, "
        "binary_crossentropy, categorical_crossentropy)",
        "train.metrics.0: 'acc' is not a metric (one of: accuracy, mse, mae, r2)",
    ]


def test_variant_parameters_are_checked():
    layer = {"units": 2, "activation": {"name": "relu", "alpha": 0.1},
             "init": {"name": "uniform", "low": 1, "high": 0}}
    assert messages({**MINIMAL, "model": {"layers": [layer]}}) == [
        "model.layers.0.activation.alpha: unknown key 'alpha' (allowed: name)",
        "model.layers.0.init.high: high must be above low, got low=1.0, high=0.0",
    ]
    layer = {"units": 2, "activation": {"name": "leaky_relu", "alpha": -1}}
    assert messages({**MINIMAL, "model": {"layers": [layer]}}) == [
        "model.layers.0.activation.alpha: expected a value >= 0, got -1"]
    sgd = {"name": "sgd", "nesterov": True}
    assert messages(config(train={"loss": "mse", "optimizer": sgd})) == [
        "train.optimizer.nesterov: nesterov needs momentum > 0; set momentum (e.g. 0.9)"]
    assert messages(config(train={"loss": "mse", "optimizer": {"lr": 0.1}})) == [
        "train.optimizer: missing required key 'name' (one of: sgd, adam, adamw, rmsprop)"]
    assert messages(config(train={"loss": "mse", "optimizer": {"name": "adam", "beta1": 1}})) \
        == ["train.optimizer.beta1: expected a value < 1, got 1"]


def test_data_rules():
    assert messages(config(data={"path": "x.csv", "validation_split": 1.0})) == [
        "data.validation_split: expected a value < 1, got 1.0"]
    assert messages(config(data={"path": "x.csv", "validation_split": 0.2,
                                 "validation_path": "v.csv"})) == [
        "data.validation_path: give validation_split or validation_path, not both "
        "(validation_split is 0.2)"]
    npy = {"path": "x.npy", "targets_path": "y.npy", "validation_path": "v.npy"}
    assert messages(config(data=npy, train={"loss": "binary_crossentropy"})) == [
        "data.validation_path: a validation file needs its targets, and with "
        "data.targets_path (.npy data) it has none: hold rows out with "
        "data.validation_split instead"]
    load_config_dict(config(data=npy))  # a forward pass reads no validation rows
    assert messages(config(data={"features": 2.5})) == [
        "data: missing required key 'path'",
        "data.features: expected a list, a string, an integer or a mapping, got the float 2.5"]
    assert messages(config(data={"path": "x", "features": ["a", True], "targets": []})) == [
        "data.features.1: expected a string or an integer, got the boolean true",
        "data.targets: expected at least 1 item, got 0"]
    assert messages(config(data={"path": "x", "features": ["a", 1]})) == [
        "data.features: column 1 is a position: positions address the columns of a file "
        "without a header line; set header: false, or name the column"]
    assert messages(config(data={"path": "x", "header": False, "targets": "y"})) == [
        "data.targets: column 'y' is a name, but header: false: address columns by position "
        "(0 is the first)"]
    assert load_config_dict(config(data={"path": "x", "header": False, "features": [0, 2],
                                         "targets": 1})).data.features == [0, 2]
    assert load_config_dict(config(data={"path": "x", "features": "x"})).data.features == "x"


def test_output_layer_must_match_the_loss():
    assert messages(config(train={"loss": "categorical_crossentropy"})) == [
        "train.loss: loss 'categorical_crossentropy' wants a softmax output layer, "
        "but model.layers.1.activation is 'sigmoid'; set it to softmax"]
    assert messages({**MINIMAL, "train": {"loss": "binary_crossentropy"}}) == [
        "train.loss: loss 'binary_crossentropy' wants a sigmoid output layer, "
        "but model.layers.0.activation is 'identity'; set it to sigmoid"]
    one_softmax = {"layers": [{"units": 1, "activation": "softmax"}]}
    assert "at least 2 output units" in messages(
        {**MINIMAL, "model": one_softmax, "train": {"loss": "categorical_crossentropy"}})[0]
    assert messages(config(train={"loss": "mae", "metrics": ["r2", "accuracy"]})) == [
        "train.metrics.1: metric 'accuracy' needs loss binary_crossentropy or "
        "categorical_crossentropy, got 'mae'"]


def test_monitored_values():
    train = {"loss": "binary_crossentropy", "metrics": ["accuracy"],
             "early_stopping": {"patience": 3}}
    assert messages(config(train=train)) == [
        "train.early_stopping.monitor: 'val_loss' needs validation data: set "
        "data.validation_split (e.g. 0.2) or data.validation_path, or monitor 'loss'"]
    split = {"path": "x.csv", "validation_split": 0.2}
    assert load_config_dict(config(data=split, train=train)).train.early_stopping.monitor \
        == "val_loss"
    train["early_stopping"] = {"monitor": "val_acuracy"}
    assert messages(config(data=split, train=train)) == [
        "train.early_stopping.monitor: 'val_acuracy' is not recorded by this fit; did you mean "
        "'val_accuracy'? (one of: loss, val_loss, accuracy, val_accuracy)"]


def test_parameter_budget():
    wide = {"inputs": 100_000, "layers": [{"units": 10_000}, {"units": 2}]}
    assert messages({**MINIMAL, "model": wide}) == [
        "model.layers.0.units: the network has 1,000,030,002 parameters (3.7 GiB as float32), "
        "over the 2 GiB limit; use fewer units"]
    # without inputs the first layer's weights are unknown: count its biases and what follows
    deep = {"layers": [{"units": 10**6}, {"units": 600}, {"units": 1}]}
    assert messages({**MINIMAL, "model": deep}) == [
        "model.layers.1.units: the network has 601,001,201 parameters (2.2 GiB as float32), "
        "over the 2 GiB limit; use fewer units"]
    square = {"inputs": 20_000, "layers": [{"units": 20_000}]}
    assert load_config_dict({**MINIMAL, "model": square}).model.inputs == 20_000
    assert messages({**MINIMAL, "dtype": "float64", "model": square}) == [
        "model.layers.0.units: the network has 400,020,000 parameters (3.0 GiB as float64), "
        "over the 2 GiB limit; use fewer units"]


def test_sweep_shape():
    assert messages(config(sweep={})) == [
        "sweep: a sweep needs grid: {path: [values]} or random: {samples, space}"]
    space = {"a": {"uniform": [1, 2], "choice": [1]}, "b": {"loguniform": [0, 1]},
             "c": {"uniform": [2, 1]}, "d": {"choice": []}}
    assert messages(config(sweep={"random": {"samples": 2, "space": space},
                                  "grid": {"seed": []}})) == [
        "sweep.grid.seed: expected at least 1 item, got 0",
        "sweep.random.space.a: give exactly one of uniform: [low, high], loguniform: "
        "[low, high] or choice: [...], got uniform and choice",
        "sweep.random.space.b.loguniform: loguniform needs low > 0, got 0.0",
        "sweep.random.space.c.uniform: low must be below high, got [2.0, 1.0]",
        "sweep.random.space.d.choice: expected at least 1 item, got 0",
    ]


def test_name_rules(tmp_path):
    assert messages(config(name="my run")) == [
        "name: 'my run' is not a valid name: use letters, digits, '_', '.' and '-', "
        "not starting with '.' or '-'"]
    path = tmp_path / "my exp.v2.yaml"
    path.write_text("data: {path: x.csv}\nmodel: {layers: [{units: 1}]}\n")
    assert load_config(path).name == "my_exp.v2"


def test_config_error_pickles():
    with pytest.raises(ConfigError) as info:
        load_config_dict(config(seed="1"))
    again = pickle.loads(pickle.dumps(info.value))
    assert str(again) == str(info.value) == "<dict>: seed: expected an integer, got the string '1'"


def test_committed_json_schema_is_current():
    committed = pathlib.Path(__file__).parents[1] / "schemas" / "config.schema.json"
    fresh = json.loads(json.dumps(json_schema()))
    assert json.loads(committed.read_text()) == fresh, (
        "schemas/config.schema.json is stale: run `python -m schemas` to regenerate it")


def test_json_schema_accepts_string_shorthand():
    schema = json_schema()
    activation = schema["$defs"]["Layer"]["properties"]["activation"]
    enums = [branch.get("enum", []) for branch in activation["anyOf"]]
    assert any("tanh" in e and "swish" in e for e in enums)
    assert schema["$defs"]["Layer"]["additionalProperties"] is False
    optimizer = schema["$defs"]["Train"]["properties"]["optimizer"]
    assert any("adam" in b.get("enum", []) for b in optimizer["anyOf"])
