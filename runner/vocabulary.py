"""Every name a config accepts, declared once: activations, initializers, optimizers,
losses and metrics, with their aliases, parameters (defaults and bounds) and rules.

The Pydantic models (schemas/config.py), the JSON Schema, the error messages' alias
lists and the engine's tables (runner/engine/) are derived from these tables or checked
against them by tests/test_vocabulary.py. Plain Python only: this module loads before
numpy and pydantic (the CLI reads PATH_KEYS while it starts).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Param:
    """A parameter of a named thing: its type is the type of `default` (float or bool);
    bounds as pydantic's Field takes them (ge, gt, lt; None: unbounded)."""

    name: str
    default: float | bool
    ge: float | None = None
    gt: float | None = None
    lt: float | None = None


@dataclass(frozen=True)
class Entry:
    """An activation, initializer or optimizer: `{name: ..., <params>}` in a config."""

    name: str
    doc: str
    params: tuple[Param, ...] = ()
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Loss:
    """A loss; `output` is the activation its output layer must have (the loss is
    computed from that layer's logits), with at least `min_units` units."""

    name: str
    doc: str
    output: str | None = None
    min_units: int = 1
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Metric:
    """A metric of a fit; `maximize`: larger is better; `classification`: it needs a
    loss with a classifying output (sigmoid or softmax)."""

    name: str
    doc: str
    maximize: bool = False
    classification: bool = False


ACTIVATIONS = (
    Entry("identity", "x (no activation).", aliases=("linear",)),
    Entry("sigmoid", "1 / (1 + exp(-x))."),
    Entry("tanh", "Hyperbolic tangent."),
    Entry("relu", "max(x, 0)."),
    Entry("leaky_relu", "max(x, alpha * x).", (Param("alpha", 0.01, ge=0),)),
    Entry("elu", "x if x > 0 else alpha * (exp(x) - 1).", (Param("alpha", 1.0, gt=0),)),
    Entry("softplus", "log(1 + exp(x))."),
    Entry("gelu", "x * Phi(x), the exact erf form."),
    Entry("silu", "x * sigmoid(x).", aliases=("swish",)),
    Entry("softmax", "exp(x) / sum(exp(x)) over each row."),
)

_LIMIT = "uniform in [-limit, limit], limit = sqrt({})."
INITIALIZERS = (
    Entry("zeros", "All zeros."),
    Entry("ones", "All ones."),
    Entry("constant", "Every value equal to `value`.", (Param("value", 0.0),)),
    Entry("normal", "Plain (not truncated) normal draws.",
          (Param("mean", 0.0), Param("std", 0.05, gt=0))),
    Entry("uniform", "Uniform draws in [low, high); low must be below high.",
          (Param("low", -0.05), Param("high", 0.05))),
    Entry("xavier_uniform", _LIMIT.format("6 / (fan_in + fan_out)"), aliases=("glorot_uniform",)),
    Entry("xavier_normal", "normal, std = sqrt(2 / (fan_in + fan_out)).",
          aliases=("glorot_normal",)),
    Entry("he_uniform", _LIMIT.format("6 / fan_in"), aliases=("kaiming_uniform",)),
    Entry("he_normal", "normal, std = sqrt(2 / fan_in).", aliases=("kaiming_normal",)),
    Entry("lecun_uniform", _LIMIT.format("3 / fan_in")),
    Entry("lecun_normal", "normal, std = sqrt(1 / fan_in)."),
    Entry("orthogonal", "A (semi-)orthogonal matrix scaled by `gain`.", (Param("gain", 1.0),)),
)

_LR, _DECAY = "lr", "weight_decay"
OPTIMIZERS = (  # PyTorch's formulas and defaults
    Entry("sgd", "v = momentum * v + g; w -= lr * v (or lr * (g + momentum * v) with "
          "nesterov, which needs momentum > 0).",
          (Param(_LR, 0.001, gt=0), Param("momentum", 0.0, ge=0), Param("nesterov", False),
           Param(_DECAY, 0.0, ge=0))),
    Entry("adam", "Bias-corrected Adam, eps outside the square root; weight_decay added to g.",
          (Param(_LR, 0.001, gt=0), Param("beta1", 0.9, ge=0, lt=1),
           Param("beta2", 0.999, ge=0, lt=1), Param("eps", 1e-8, gt=0), Param(_DECAY, 0.0, ge=0))),
    Entry("adamw", "Adam with decoupled weight decay: w -= lr * weight_decay * w.",
          (Param(_LR, 0.001, gt=0), Param("beta1", 0.9, ge=0, lt=1),
           Param("beta2", 0.999, ge=0, lt=1), Param("eps", 1e-8, gt=0),
           Param(_DECAY, 0.01, ge=0))),
    Entry("rmsprop", "s = alpha * s + (1 - alpha) * g**2; w -= lr * g / (sqrt(s) + eps).",
          (Param(_LR, 0.01, gt=0), Param("alpha", 0.99, ge=0, lt=1), Param("eps", 1e-8, gt=0),
           Param("momentum", 0.0, ge=0), Param(_DECAY, 0.0, ge=0))),
)

LOSSES = (
    Loss("mse", "mean((a - y)^2) over the batch and the outputs."),
    Loss("mae", "mean(|a - y|) over the batch and the outputs."),
    Loss("binary_crossentropy", "BCEWithLogitsLoss: from the logits of a sigmoid output.",
         output="sigmoid"),
    Loss("categorical_crossentropy", "CrossEntropyLoss: from the logits of a softmax output.",
         output="softmax", min_units=2, aliases=("cross_entropy",)),
)

METRICS = (
    Metric("accuracy", "Share of rows whose predicted class is the target's.", maximize=True,
           classification=True),
    Metric("mse", "Mean squared error."),
    Metric("mae", "Mean absolute error."),
    Metric("r2", "Coefficient of determination, 1 - SS_res / SS_tot.", maximize=True),
)

SCHEDULES = (  # learning-rate schedules, stepped once per epoch (torch.optim.lr_scheduler)
    Entry("step", "lr0 * gamma ** (epoch // step_size) (StepLR)."),
    Entry("multistep", "lr0 * gamma ** (milestones passed) (MultiStepLR)."),
    Entry("exponential", "lr0 * gamma ** epoch (ExponentialLR)."),
    Entry("cosine", "cosine annealing to eta_min over t_max epochs (CosineAnnealingLR)."),
    Entry("plateau", "lr * factor when the monitor stalls (ReduceLROnPlateau)."),
)

# The config keys that name input files (made absolute, hashed into the run id).
PATH_KEYS = ("data.path", "data.targets_path", "data.validation_path", "model.weights",
             "predict.path")
PREDICT_BATCH = 4096  # rows per forward minibatch of predictions, by default


def names(table) -> tuple[str, ...]:
    """The canonical names of a table, in declaration order."""
    return tuple(entry.name for entry in table)


def aliases(table) -> dict[str, str]:
    """{alias: canonical name} of a table."""
    return {alias: entry.name for entry in table for alias in entry.aliases}


def defaults(entry) -> dict:
    """{param: default} of an Entry."""
    return {p.name: p.default for p in entry.params}


def find(table, name):
    """The entry of `name` (canonical) in a table; KeyError when absent."""
    for entry in table:
        if entry.name == name:
            return entry
    raise KeyError(name)


def maximized() -> tuple[str, ...]:
    """The metrics where larger is better; every other value is minimized."""
    return tuple(m.name for m in METRICS if m.maximize)


def monitor_mode(monitor) -> str:
    """"max" or "min" for a recorded value (`loss`, `val_accuracy`, ...)."""
    base = monitor[4:] if monitor.startswith("val_") else monitor
    return "max" if base in maximized() else "min"
