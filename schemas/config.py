"""The Pydantic models of a yamlnet config (docs/config.md).

Every model forbids unknown keys and coerces nothing (the string "2" is not 2).
`name: ...` objects (activations, initializers, optimizers) are discriminated unions
that also accept a plain string (`activation: tanh`) and a few aliases
(`linear`, `swish`, `glorot_uniform`, ...). Checks that span several sections live in
`Config` and raise one error carrying every located problem (see `_refuse`).
"""

from typing import Annotated, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model, model_validator
from pydantic_core import PydanticCustomError

from runner import vocabulary
from runner.errors import did_you_mean

MAX_PARAMETER_BYTES = 2 * 1024**3  # a network larger than 2 GiB is refused
PREDICT_BATCH = vocabulary.PREDICT_BATCH


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, allow_inf_nan=False, validate_default=True,
        validate_assignment=True,  # `config.train.epochs = "lots"` fails where it is set
    )


def _refuse(*problems: tuple[tuple, str]):
    """Fail validation with several problems, each `(loc relative to this model, message)`.

    The loader locates each one in the YAML; plain pydantic users see the joined text."""
    text = "; ".join(".".join(map(str, loc)) + ": " + msg if loc else msg for loc, msg in problems)
    raise PydanticCustomError("config", "{message}", {"message": text, "problems": list(problems)})


def _variant(entry: vocabulary.Entry, names: tuple, base: type[_Strict]) -> type[_Strict]:
    """The model of one `{name: ..., <params>}` entry; `names`: the tags it takes."""
    fields = {"name": (Literal[names], ...)}
    for p in entry.params:
        bounds = {k: getattr(p, k) for k in ("ge", "gt", "lt") if getattr(p, k) is not None}
        fields[p.name] = (type(p.default), Field(p.default, **bounds))
    title = entry.name.title().replace("_", "")
    return create_model(title, __base__=base, __doc__=entry.doc, **fields)


def _named(table: tuple, checks: dict[str, type[_Strict]] | None = None):
    """(names, type): a discriminated union on `name` over the entries of a vocabulary
    table, that also accepts the name alone or an alias. `checks` gives the base class
    (holding a cross-parameter validator) of some entries."""
    checks = checks or {}
    names, aliases = vocabulary.names(table), vocabulary.aliases(table)
    variants = tuple(_variant(e, (e.name,), checks.get(e.name, _Strict)) for e in table)
    union = Annotated[Union[variants], Field(discriminator="name")]  # noqa: UP007
    # What a file may hold, for the JSON Schema: each variant under its aliases too.
    written = tuple(_variant(e, (e.name, *e.aliases), checks.get(e.name, _Strict)) for e in table)
    accepted = Literal[names + tuple(aliases)] | Annotated[
        Union[written], Field(discriminator="name")]  # noqa: UP007

    def normalize(value):
        if isinstance(value, str):
            value = {"name": value}
        if isinstance(value, dict) and isinstance(value.get("name"), str):
            value = {**value, "name": aliases.get(value["name"], value["name"])}
        return value

    return names, Annotated[union, BeforeValidator(normalize, json_schema_input_type=accepted)]


def _aliased(table: tuple):
    """A Literal of a table's names that also accepts its aliases."""
    names, aliases = vocabulary.names(table), vocabulary.aliases(table)

    def normalize(value):
        return aliases.get(value, value) if isinstance(value, str) else value

    allowed = Literal[names + tuple(aliases)]
    return Annotated[Literal[names], BeforeValidator(normalize, json_schema_input_type=allowed)]


class _Ordered(_Strict):
    """The check of `uniform`: low below high."""

    @model_validator(mode="after")
    def _ordered(self):
        if self.low >= self.high:
            _refuse((("high",), f"high must be above low, got low={self.low}, high={self.high}"))
        return self


class _Nesterov(_Strict):
    """The check of `sgd`: Nesterov momentum needs a momentum."""

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self):
        if self.nesterov and self.momentum <= 0:
            _refuse((("nesterov",), "nesterov needs momentum > 0; set momentum (e.g. 0.9)"))
        return self


ACTIVATION_NAMES, Activation = _named(vocabulary.ACTIVATIONS)
INIT_NAMES, Init = _named(vocabulary.INITIALIZERS, {"uniform": _Ordered})
OPTIMIZER_NAMES, Optimizer = _named(vocabulary.OPTIMIZERS, {"sgd": _Nesterov})
LOSS_NAMES = vocabulary.names(vocabulary.LOSSES)
METRIC_NAMES = vocabulary.names(vocabulary.METRICS)
LossName = _aliased(vocabulary.LOSSES)
MetricName = Literal[METRIC_NAMES]


# ---- sections ----------------------------------------------------------------------

Scaling = Literal["none", "standard", "minmax"]
DEFAULT_NA = ("", "NA", "N/A", "NaN", "null")  # cells read as missing, by default
_DELIMITERS = {"tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


class NumericColumn(_Strict):
    """A numeric feature column: missing cells refused, filled (mean, median, constant
    `value`) or their rows dropped; scaled by `scale` (default: data.scale)."""

    type: Literal["numeric"]
    missing: Literal["error", "mean", "median", "constant", "drop_row"] = "error"
    value: float | None = None
    scale: Scaling | None = None

    @model_validator(mode="after")
    def _value_with_constant(self):
        if self.missing == "constant" and self.value is None:
            _refuse((("value",), "missing: constant needs a value, e.g. value: 0"))
        if self.missing != "constant" and self.value is not None:
            _refuse((("value",), f"value is only used with missing: constant (missing is "
                     f"{self.missing!r})"))
        return self


class CategoricalColumn(_Strict):
    """A categorical feature column, one-hot encoded over the categories of the training
    rows (numbers in numeric order, then text in code-point order)."""

    type: Literal["categorical"]
    missing: Literal["error", "category", "drop_row"] = "error"
    unknown: Literal["error", "ignore"] = "error"
    max_categories: int | None = Field(None, ge=2)


class BinaryColumn(_Strict):
    """A column of two values (numbers, true/false or two strings) coded 0/1 in sorted order."""

    type: Literal["binary"]
    missing: Literal["error", "drop_row"] = "error"


def _column_shorthand(value):
    return {"type": value} if isinstance(value, str) else value


Column = Annotated[
    Annotated[Union[NumericColumn, CategoricalColumn, BinaryColumn],  # noqa: UP007
              Field(discriminator="type")],
    BeforeValidator(_column_shorthand, json_schema_input_type=Literal[
        "numeric", "categorical", "binary"] | Annotated[Union[  # noqa: UP007
            NumericColumn, CategoricalColumn, BinaryColumn], Field(discriminator="type")]),
]
ColumnName = str | Annotated[int, Field(ge=0)]  # an int: a position, with header: false


def _delimiter(value):
    return _DELIMITERS.get(value, value) if isinstance(value, str) else value


class Data(_Strict):
    """Where the rows come from; paths are relative to the config file."""

    path: str = Field(min_length=1)
    features: (Annotated[list[ColumnName], Field(min_length=1)] | ColumnName
               | Annotated[dict[ColumnName, Column], Field(min_length=1)] | None) = None
    targets: Annotated[list[ColumnName], Field(min_length=1)] | ColumnName | None = None
    targets_path: str | None = None
    scale: Scaling = "none"
    target_scale: Literal["none", "standard", "minmax", "log"] = "none"
    validation_split: float = Field(0.0, ge=0, lt=1)  # 0 = no split
    validation_path: str | None = None
    delimiter: Annotated[Literal[",", ";", "\t", "|"] | None, BeforeValidator(
        _delimiter, json_schema_input_type=Literal[
            ",", ";", "\t", "|", "tab", "comma", "semicolon", "pipe"] | None)] = None
    header: bool = True
    na_values: list[str] = list(DEFAULT_NA)
    decimal: Literal[".", ","] = "."
    sample_weight: ColumnName | None = None  # a column of row weights (a fit's loss)
    folds: int | None = Field(None, ge=2, le=100)  # k-fold cross-validation: K fits
    fold: int | None = Field(None, ge=0)  # the fold held out (set for each of the K fits)
    # how a fit holds .npy features: read into memory, memory-mapped, or mapped when the
    # file is large against the memory available (docs/data.md); not part of the run id
    memory: Literal["auto", "load", "map"] = "auto"

    @model_validator(mode="after")
    def _consistent(self):
        problems = []
        if self.memory == "map" and not self.path.lower().endswith(".npy"):
            problems.append((("memory",), f"memory: map reads a .npy through a memory map, and "
                             f"{self.path} is not a .npy; valid for this file: auto or load"))
        if self.validation_split > 0 and self.validation_path is not None:
            problems.append((("validation_path",), "give validation_split or validation_path, "
                             f"not both (validation_split is {self.validation_split})"))
        if self.fold is not None and (self.folds is None or self.fold >= self.folds):
            problems.append((("fold",), f"fold {self.fold} needs folds above it (folds is "
                             f"{self.folds}); folds: K runs every fold 0..K-1"))
        if self.folds is not None and (self.validation_split > 0 or self.validation_path):
            problems.append((("folds",), "folds holds out each fold in turn: give folds, or "
                             "validation_split / validation_path, not both"))
        if self.decimal == "," and self.delimiter == ",":
            problems.append((("decimal",), "decimal ',' needs another delimiter (';', tab or "
                             "'|'): a comma cannot separate both columns and decimals"))
        for key in ("features", "targets"):
            value = getattr(self, key)
            names = list(value) if isinstance(value, (list, dict)) else [value]
            if self.header and any(isinstance(n, int) for n in names):
                n = next(n for n in names if isinstance(n, int))
                problems.append(((key,), f"column {n} is a position: positions address the "
                                 "columns of a file without a header line; set header: false, "
                                 "or name the column"))
            elif not self.header and any(isinstance(n, str) and not n.isdigit() for n in names):
                n = next(n for n in names if isinstance(n, str) and not n.isdigit())
                problems.append(((key,), f"column {n!r} is a name, but header: false: address "
                                 "columns by position (0 is the first)"))
        if problems:
            _refuse(*problems)
        return self

    def column_types(self) -> dict | None:
        """{column: Column} when features are declared with types, else None."""
        return self.features if isinstance(self.features, dict) else None


class Layer(_Strict):
    """A dense layer: Z = X @ W + b, then the activation."""

    units: int = Field(ge=1, le=1_000_000)
    activation: Activation = "identity"
    init: Init = "xavier_uniform"
    bias_init: Init = "zeros"
    bias: bool = True
    dropout: float = Field(0.0, ge=0, lt=1)  # inverted dropout on this layer's output, in fits
    l1: float = Field(0.0, ge=0)  # penalty l1 * sum|W| added to the loss (not the bias)
    l2: float = Field(0.0, ge=0)  # penalty l2 * sum W^2


class Model(_Strict):
    """The stack of dense layers; `inputs` is inferred from the data when omitted."""

    inputs: Annotated[int, Field(ge=1)] | None = None
    weights: str | None = None
    layers: list[Layer] = Field(min_length=1)


class EarlyStopping(_Strict):
    """Stop when `monitor` has not improved by `min_delta` for `patience` epochs."""

    monitor: str = "val_loss"
    patience: int = Field(10, ge=0)
    min_delta: float = Field(0.0, ge=0)
    restore_best: bool = False


# ---- schedules (torch.optim.lr_scheduler's definitions, stepped once per epoch) ------

class StepSchedule(_Strict):
    """lr = lr0 * gamma ** (epoch // step_size) (StepLR)."""

    name: Literal["step"]
    step_size: int = Field(ge=1)
    gamma: float = Field(0.1, gt=0)


class MultiStepSchedule(_Strict):
    """lr = lr0 * gamma ** (number of milestones passed) (MultiStepLR)."""

    name: Literal["multistep"]
    milestones: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1)]
    gamma: float = Field(0.1, gt=0)


class ExponentialSchedule(_Strict):
    """lr = lr0 * gamma ** epoch (ExponentialLR)."""

    name: Literal["exponential"]
    gamma: float = Field(gt=0)


class CosineSchedule(_Strict):
    """Cosine annealing from lr0 to eta_min over t_max epochs (CosineAnnealingLR)."""

    name: Literal["cosine"]
    t_max: int = Field(ge=1)
    eta_min: float = Field(0.0, ge=0)


class PlateauSchedule(_Strict):
    """lr *= factor when `monitor` has not improved for `patience` epochs
    (ReduceLROnPlateau, relative threshold; its mode follows the monitor)."""

    name: Literal["plateau"]
    monitor: str = "val_loss"
    factor: float = Field(0.1, gt=0, lt=1)
    patience: int = Field(10, ge=0)
    threshold: float = Field(1e-4, ge=0)
    cooldown: int = Field(0, ge=0)
    min_lr: float = Field(0.0, ge=0)


SCHEDULE_NAMES = vocabulary.names(vocabulary.SCHEDULES)
Schedule = Annotated[
    Annotated[Union[StepSchedule, MultiStepSchedule, ExponentialSchedule,  # noqa: UP007
                    CosineSchedule, PlateauSchedule], Field(discriminator="name")],
    BeforeValidator(lambda v: {"name": v} if isinstance(v, str) else v)]


class Warmup(_Strict):
    """A linear warmup from start_factor * lr0 to lr0 over `epochs` epochs (LinearLR),
    before the schedule."""

    epochs: int = Field(ge=1)
    start_factor: float = Field(1 / 3, gt=0, le=1)


class Clip(_Strict):
    """Gradient clipping: the global L2 `norm` (clip_grad_norm_) or each `value`
    (clip_grad_value_); exactly one."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})
    norm: float | None = Field(None, gt=0)
    value: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one(self):
        if (self.norm is None) == (self.value is None):
            _refuse(((), "give exactly one of norm: X (the global L2 norm) or value: X"))
        return self


class Train(_Strict):
    """How to fit; without a train section a run is a forward pass."""

    loss: LossName
    optimizer: Optimizer = "adam"
    epochs: int = Field(100, ge=1, le=10_000_000)
    batch_size: Annotated[int, Field(ge=1)] | Literal["full"] = 32
    shuffle: bool = True
    metrics: list[MetricName] = []
    early_stopping: EarlyStopping | None = None
    schedule: Schedule | None = None
    warmup: Warmup | None = None
    clip: Clip | None = None
    class_weight: Literal["balanced"] | Annotated[
        dict[str | int, Annotated[float, Field(gt=0)]], Field(min_length=1)] | None = None
    checkpoint_every: int | None = Field(None, ge=0)  # epochs; 0 never; null: every minute


class Predict(_Strict):
    """What a forward pass runs over (default: data.path) and how predictions are saved."""

    path: str | None = None
    batch_size: int = Field(PREDICT_BATCH, ge=1)
    format: Literal["csv", "npy"] = "csv"
    keep: Annotated[list[str], Field(min_length=1)] | None = None  # input columns copied over

    @model_validator(mode="after")
    def _keep_in_csv(self):
        if self.keep and self.format != "csv":
            _refuse((("keep",), "keep copies input columns into predictions.csv; it needs "
                     f"format: csv (format is {self.format!r})"))
        return self


class Space(_Strict):
    """One dimension of a random search: exactly one of uniform, loguniform, choice."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})
    uniform: Annotated[list[float], Field(min_length=2, max_length=2)] | None = None
    loguniform: Annotated[list[float], Field(min_length=2, max_length=2)] | None = None
    choice: Annotated[list, Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _one_kind(self):
        given = [k for k in ("uniform", "loguniform", "choice") if getattr(self, k) is not None]
        if len(given) != 1:
            _refuse(((), "give exactly one of uniform: [low, high], loguniform: [low, high] "
                     f"or choice: [...], got {' and '.join(given) or 'none'}"))
        kind = given[0]
        if kind != "choice":
            low, high = getattr(self, kind)
            if low >= high:
                _refuse(((kind,), f"low must be below high, got [{low}, {high}]"))
            if kind == "loguniform" and low <= 0:
                _refuse(((kind,), f"loguniform needs low > 0, got {low}"))
        return self


class RandomSearch(_Strict):
    """`samples` seeded draws from `space` (dotted path -> Space)."""

    samples: int = Field(ge=1, le=1_000_000)
    space: dict[str, Space] = Field(min_length=1)


class Halving(_Strict):
    """Successive halving: every trial runs `min_epochs`, the best 1/`factor` go on to
    min_epochs * factor epochs, and so on up to train.epochs (runner/runs/halving.py)."""

    min_epochs: int = Field(ge=1)
    factor: int = Field(3, ge=2)


class Sweep(_Strict):
    """A grid and/or a random search; every trial runs once per seed."""

    grid: dict[str, Annotated[list, Field(min_length=1)]] | None = None
    random: RandomSearch | None = None
    seeds: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)] | None = None
    metric: str = "val_loss"
    mode: Literal["min", "max"] = "min"
    halving: Halving | None = None

    @model_validator(mode="after")
    def _something_to_sweep(self):
        if not self.grid and self.random is None:
            _refuse(((), "a sweep needs grid: {path: [values]} or random: {samples, space}"))
        return self


class Mlflow(_Strict):
    """Log each run (each sweep trial) to MLflow (extra 'mlflow')."""

    uri: str | None = None  # default: MLflow's own MLFLOW_TRACKING_URI
    experiment: str | None = Field(None, min_length=1)  # default: the config's name


class Track(_Strict):
    """Experiment tracking; left out of the run id and config.yaml."""

    mlflow: Mlflow | None = None


class Config(_Strict):
    """A yamlnet config: data, a model, and optionally train, predict and sweep."""

    name: str = Field("config", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    seed: int = Field(0, ge=0)
    dtype: Literal["float32", "float64"] = "float32"
    data: Data
    model: Model
    train: Train | None = None
    predict: Predict | None = None
    sweep: Sweep | None = None
    track: Track | None = None

    def prediction(self) -> tuple[Predict, str, str]:
        """(settings, file, key): the predict section (its defaults when absent), the file
        whose rows are predicted (predict.path, else data.path) and the key naming it."""
        spec = self.predict or Predict()
        return (spec, spec.path, "predict.path") if spec.path else (spec, self.data.path, "data.path")

    @model_validator(mode="after")
    def _consistent(self):
        problems = self._size_problems() + self._halving_problems() + self._validation_file()
        if self.train is not None:
            problems = self._loss_problems(self.train) + self._watch_problems(self.train) + problems
        if problems:
            _refuse(*problems)
        return self

    def _loss_problems(self, train: Train) -> list:
        """The output layer must suit the loss, which is computed from its logits."""
        out, problems = len(self.model.layers) - 1, []
        if self.model.layers[-1].dropout:
            problems.append((("model", "layers", out, "dropout"), "dropout applies to hidden "
                             "layers; the output layer feeds the loss"))
        if train.class_weight is not None and vocabulary.find(vocabulary.LOSSES,
                                                              train.loss).output is None:
            problems.append((("train", "class_weight"), "class_weight needs a classification "
                             f"loss (binary_crossentropy or categorical_crossentropy), got "
                             f"'{train.loss}'; weigh rows with data.sample_weight"))
        last, units = self.model.layers[-1].activation.name, self.model.layers[-1].units
        rule = vocabulary.find(vocabulary.LOSSES, train.loss)
        want = rule.output
        if want is not None and last != want:
            problems.append((("train", "loss"), f"loss '{train.loss}' wants a {want} output "
                             f"layer, but model.layers.{out}.activation is '{last}'; "
                             f"set it to {want}"))
        elif units < rule.min_units:
            problems.append((("train", "loss"), f"loss '{train.loss}' wants at least "
                             f"{rule.min_units} output units, got {units}; for one output use "
                             "binary_crossentropy with a sigmoid"))
        classifying = [n for n in vocabulary.names(vocabulary.LOSSES)
                       if vocabulary.find(vocabulary.LOSSES, n).output]
        for i, name in enumerate(train.metrics):
            if vocabulary.find(vocabulary.METRICS, name).classification and want is None:
                problems.append((("train", "metrics", i), f"metric '{name}' needs loss "
                                 f"{' or '.join(classifying)}, got '{train.loss}'"))
        return problems

    def _watch_problems(self, train: Train) -> list:
        """early_stopping.monitor and sweep.metric must name a value the fit records."""
        allowed = ["loss", "val_loss", *train.metrics, *(f"val_{m}" for m in train.metrics)]
        validated = self._validated_everywhere()
        watched, problems = [], []
        if train.early_stopping is not None:
            watched.append((("train", "early_stopping", "monitor"), train.early_stopping.monitor))
        if train.schedule is not None and train.schedule.name == "plateau":
            watched.append((("train", "schedule", "monitor"), train.schedule.monitor))
        if self.sweep is not None:
            watched.append((("sweep", "metric"), self.sweep.metric))
        for loc, name in watched:
            if name not in allowed:
                hint = did_you_mean(name, allowed)
                problems.append((loc, f"'{name}' is not recorded by this fit{hint} "
                                 f"(one of: {', '.join(allowed)})"))
            elif name.startswith("val_") and not validated and loc[0] == "train":
                problems.append((loc, f"'{name}' needs validation data: set data.validation_split "
                                 f"(e.g. 0.2) or data.validation_path, or monitor '{name[4:]}'"))
        return problems

    def _halving_problems(self) -> list:
        """sweep.halving stops fits at rungs below train.epochs and ranks them there."""
        spec = self.sweep.halving if self.sweep is not None else None
        if spec is None:
            return []
        if self.train is None:
            return [(("sweep", "halving"), "successive halving stops and continues fits: the "
                     "config needs a train section")]
        problems = []
        if spec.min_epochs >= self.train.epochs:
            problems.append((("sweep", "halving", "min_epochs"), f"must be below train.epochs "
                             f"({self.train.epochs}), got {spec.min_epochs}: the first rung "
                             "stops the trials there"))
        swept = {*(self.sweep.grid or {}), *(self.sweep.random.space if self.sweep.random else {})}
        if "train.epochs" in swept:
            problems.append((("sweep", "halving"), "halving sets the epochs of each rung up to "
                             "train.epochs: do not sweep train.epochs with it"))
        metric = self.sweep.metric
        if metric.startswith("val_") and not self._validated_everywhere():
            problems.append((("sweep", "metric"), f"'{metric}' needs validation data in every "
                             "trial to rank the rungs of sweep.halving: set "
                             "data.validation_split (e.g. 0.2) or data.validation_path (and "
                             f"sweep no trial to 0 or null), or rank by '{metric[4:]}'"))
        return problems

    def _validated_everywhere(self) -> bool:
        """Whether every run of this config (every trial of its sweep) holds validation
        rows: a validation_split above 0, a validation_path or folds. A swept key takes
        the grid's values, a random choice's, or a range (whose draws are above its low)."""
        d = self.data
        return not all(any(not v for v in self._values(key, base)) for key, base in (
            ("data.validation_split", d.validation_split),
            ("data.validation_path", d.validation_path), ("data.folds", d.folds)))

    def _values(self, key, base) -> list:
        """The values a dotted key takes over the trials: [base] when it is not swept."""
        s, values = self.sweep, []
        if s is not None and s.grid and key in s.grid:
            values += s.grid[key]
        space = s.random.space.get(key) if s is not None and s.random else None
        if space is not None:
            values += space.choice if space.choice is not None else [
                (space.uniform or space.loguniform)[1]]
        return values or [base]

    def _validation_file(self) -> list:
        """A validation file holds its own targets; a .npy cannot (data.targets_path names
        the training rows' only)."""
        d = self.data
        if self.train is None or d.validation_path is None or d.targets_path is None:
            return []
        return [(("data", "validation_path"), "a validation file needs its targets, and with "
                 "data.targets_path (.npy data) it has none: hold rows out with "
                 "data.validation_split instead")]

    def _size_problems(self) -> list:
        fan_in, sizes = self.model.inputs, []
        for layer in self.model.layers:
            weights = 0 if fan_in is None else fan_in * layer.units  # unknown fan_in: skip W
            sizes.append(weights + (layer.units if layer.bias else 0))
            fan_in = layer.units
        itemsize = 4 if self.dtype == "float32" else 8
        total = sum(sizes) * itemsize
        if total <= MAX_PARAMETER_BYTES:
            return []
        big = sizes.index(max(sizes))
        return [(("model", "layers", big, "units"), f"the network has {sum(sizes):,} parameters "
                 f"({total / 1024**3:,.1f} GiB as {self.dtype}), over the 2 GiB limit; "
                 "use fewer units")]


def json_schema() -> dict:
    """The JSON Schema of a config file (for editors and `yamlnet schema`), with the
    `extends` key that the loader reads before validating (schemas/compose.py)."""
    from schemas.compose import extend_schema

    return extend_schema(Config.model_json_schema())
