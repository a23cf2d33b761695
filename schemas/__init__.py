"""The config of yamlnet: Pydantic models, a YAML loader with located errors, the schema."""

from schemas.config import (
    ACTIVATION_NAMES,
    INIT_NAMES,
    LOSS_NAMES,
    METRIC_NAMES,
    OPTIMIZER_NAMES,
    Config,
    json_schema,
)
from schemas.loader import (
    PATH_KEYS,
    ConfigError,
    PathError,
    Problem,
    get_path,
    load_config,
    load_config_dict,
    locate,
    set_path,
)

__all__ = [
    "ACTIVATION_NAMES",
    "INIT_NAMES",
    "LOSS_NAMES",
    "METRIC_NAMES",
    "OPTIMIZER_NAMES",
    "PATH_KEYS",
    "Config",
    "ConfigError",
    "PathError",
    "Problem",
    "get_path",
    "json_schema",
    "load_config",
    "load_config_dict",
    "locate",
    "set_path",
]
