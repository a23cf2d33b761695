"""yamlnet: run neural networks described in YAML.

The Python API (see the README's "Python API" section) lives in `runner.api`.
"""

__version__ = "0.1.0"
