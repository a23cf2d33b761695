"""The vocabulary (runner/vocabulary.py) is the one declaration of every name a config
accepts. These tests tie everything else to it: the engine tables and their parameter
defaults, the Pydantic models, the JSON Schema, the error messages' aliases, and the
rules; and they pin the contract users read in docs/config.md, so that a change made
in one place only fails here."""

import inspect
import json

import pytest

from runner import vocabulary as V
from runner.engine.activations import ACTIVATIONS, DERIVATIVES
from runner.engine.initializers import INITIALIZERS
from runner.engine.losses import FUSED, FUSED_VALUES, LOSS_DERIVATIVES, LOSSES, METRICS
from runner.engine.optimizers import OPTIMIZERS
from schemas import ConfigError, json_schema, load_config_dict

# The contract (docs/config.md): aliases, PyTorch's optimizer defaults, which metrics are
# maximized, which output layer each loss wants.
ALIASES = {
    "linear": "identity", "swish": "silu",
    "glorot_uniform": "xavier_uniform", "glorot_normal": "xavier_normal",
    "kaiming_uniform": "he_uniform", "kaiming_normal": "he_normal",
    "cross_entropy": "categorical_crossentropy",
}
TORCH_DEFAULTS = {
    "sgd": {"lr": 0.001, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0},
    "adam": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0},
    "adamw": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01},
    "rmsprop": {"lr": 0.01, "alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "weight_decay": 0.0},
}
MAXIMIZED = {"accuracy", "r2"}
OUTPUTS = {"mse": None, "mae": None, "binary_crossentropy": "sigmoid",
           "categorical_crossentropy": "softmax"}


def config(**overrides):
    tree = {"data": {"path": "x.csv"}, "model": {"layers": [{"units": 2}]}}
    for key, value in overrides.items():
        section, field = key.split("__")
        tree.setdefault(section, {})[field] = value
    return tree


def keywords(fn, skip):
    """{name: default} of the parameters of `fn` after its first `skip` ones."""
    params = list(inspect.signature(fn).parameters.values())[skip:]
    return {p.name: p.default for p in params}


# ---- the contract --------------------------------------------------------------------

def test_aliases_are_the_documented_ones():
    declared = {**V.aliases(V.ACTIVATIONS), **V.aliases(V.INITIALIZERS), **V.aliases(V.LOSSES),
                **V.aliases(V.OPTIMIZERS)}
    assert declared == ALIASES


def test_optimizer_defaults_are_pytorchs():
    assert {e.name: V.defaults(e) for e in V.OPTIMIZERS} == TORCH_DEFAULTS


def test_maximized_metrics_and_loss_outputs():
    assert set(V.maximized()) == MAXIMIZED
    assert {loss.name: loss.output for loss in V.LOSSES} == OUTPUTS
    for name in ("accuracy", "val_accuracy", "r2", "val_r2"):
        assert V.monitor_mode(name) == "max"
    for name in ("loss", "val_loss", "mse", "val_mae"):
        assert V.monitor_mode(name) == "min"


# ---- the engine tables agree ------------------------------------------------------------

@pytest.mark.parametrize("table, vocab", [
    (ACTIVATIONS, V.ACTIVATIONS), (DERIVATIVES, V.ACTIVATIONS), (INITIALIZERS, V.INITIALIZERS),
    (OPTIMIZERS, V.OPTIMIZERS), (LOSSES, V.LOSSES), (METRICS, V.METRICS),
])
def test_engine_tables_hold_every_name_and_no_other(table, vocab):
    assert set(table) == set(V.names(vocab))


def test_onnx_export_has_every_activation():
    pytest.importorskip("onnx", reason="the ONNX builder needs the 'onnx' package (test extra)")
    from runner.runs.onnx_ops import ACTIVATIONS as EXPORTED

    assert set(EXPORTED) == set(V.names(V.ACTIVATIONS))


def test_engine_defaults_equal_the_vocabulary():
    for entry in V.ACTIVATIONS:
        assert keywords(ACTIVATIONS[entry.name], 3) == V.defaults(entry), entry.name
        assert keywords(DERIVATIVES[entry.name], 4) == V.defaults(entry), entry.name
    for entry in V.INITIALIZERS:
        assert keywords(INITIALIZERS[entry.name], 4) == V.defaults(entry), entry.name
    for entry in V.OPTIMIZERS:
        assert keywords(OPTIMIZERS[entry.name].__init__, 2) == V.defaults(entry), entry.name


def test_each_loss_rule_matches_the_engine_gradients():
    """A loss that wants an output layer has a fused gradient with it (and no plain
    one); a loss without has a derivative of its own."""
    for loss in V.LOSSES:
        if loss.output:
            assert (loss.output, loss.name) in FUSED
            assert loss.name not in LOSS_DERIVATIVES
        else:
            assert loss.name in LOSS_DERIVATIVES
            assert not any(key[1] == loss.name for key in FUSED)
    assert set(FUSED_VALUES) <= set(FUSED)


# ---- the models, the schema and the messages are derived ------------------------------

@pytest.mark.parametrize("field, table", [
    ("activation", V.ACTIVATIONS), ("init", V.INITIALIZERS), ("bias_init", V.INITIALIZERS),
])
def test_models_take_every_name_with_the_vocabulary_defaults(field, table):
    for entry in table:
        for written in (entry.name, *entry.aliases):
            c = load_config_dict(config(model__layers=[{"units": 2, field: {"name": written}}]))
            spec = getattr(c.model.layers[0], field)
            assert spec.model_dump() == {"name": entry.name, **V.defaults(entry)}


def test_optimizer_and_loss_models_follow_the_vocabulary():
    for entry in V.OPTIMIZERS:
        c = load_config_dict(config(train__loss="mse", train__optimizer=entry.name))
        assert c.train.optimizer.model_dump() == {"name": entry.name, **V.defaults(entry)}
    for loss in V.LOSSES:
        for written in (loss.name, *loss.aliases):
            units = max(2, loss.min_units)
            layer = {"units": units, "activation": loss.output or "identity"}
            c = load_config_dict(config(train__loss=written, model__layers=[layer]))
            assert c.train.loss == loss.name


def test_bounds_come_from_the_vocabulary():
    for entry in V.OPTIMIZERS:
        for p in entry.params:
            bound = p.gt if p.gt is not None else p.ge
            if bound is None:
                continue
            bad = bound - 1.0 if p.gt is None else bound
            with pytest.raises(ConfigError, match=f"train.optimizer.{p.name}"):
                load_config_dict(config(train__loss="mse",
                                        train__optimizer={"name": entry.name, p.name: bad}))


def test_loss_output_rule_is_enforced_for_every_loss():
    for loss in V.LOSSES:
        if loss.output is None:
            continue
        with pytest.raises(ConfigError, match=f"wants a {loss.output} output"):
            load_config_dict(config(train__loss=loss.name,
                                    model__layers=[{"units": 2, "activation": "tanh"}]))


def test_json_schema_accepts_every_name_and_alias_in_both_forms():
    schema = json.dumps(json_schema())
    layer = json_schema()["$defs"]["Layer"]["properties"]
    for field, table in (("activation", V.ACTIVATIONS), ("init", V.INITIALIZERS)):
        shorthand = layer[field]["anyOf"][0]["enum"]
        mapping = layer[field]["anyOf"][1]["discriminator"]["mapping"]
        for entry in table:
            for written in (entry.name, *entry.aliases):
                assert written in shorthand and written in mapping, written
    for alias in ALIASES:
        assert f'"{alias}"' in schema


def test_near_miss_of_an_alias_suggests_it():
    for field, typo, alias in (("activation", "swissh", "swish"),
                               ("init", "glorot_unifrm", "glorot_uniform")):
        with pytest.raises(ConfigError) as e:
            load_config_dict(config(model__layers=[{"units": 2, field: typo}]))
        assert f"did you mean '{alias}'" in str(e.value)


def test_path_keys_are_the_string_fields_that_name_files():
    from schemas.config import Data, Model, Predict

    sections = {"data": Data, "model": Model, "predict": Predict}
    named = {f"{s}.{f}" for s, m in sections.items() for f in m.model_fields
             if f == "path" or f.endswith("_path") or f == "weights"}
    assert named == set(V.PATH_KEYS)


def test_predict_batch_default_is_declared_once():
    from runner import cli
    from schemas.config import Predict

    assert Predict().batch_size == V.PREDICT_BATCH
    option = next(p for p in cli.predict.params if p.name == "batch_size")
    assert option.default == V.PREDICT_BATCH
