"""`python -m schemas` rewrites schemas/config.schema.json from the models."""

import json
from pathlib import Path

from schemas.config import json_schema

SCHEMA_FILE = Path(__file__).with_name("config.schema.json")


def schema_text() -> str:
    """The committed form of the schema: sorted keys, two-space indent, final newline."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    SCHEMA_FILE.write_text(schema_text(), encoding="utf-8")
