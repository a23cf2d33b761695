"""weights.npz: byte-reproducible writing and safe reading.

Keys (docs/run-folders.md): `layers.N.W` (fan_in, units), `layers.N.b` (units,), the scaling
statistics (`scale.*`) and, for classification, `classes` (K,) str.
numpy's own savez stamps each member with the current time, so two identical runs
would differ in bytes; here every member gets a fixed timestamp instead.
"""

import zipfile

import numpy as np

from runner.errors import UserError
from runner.io import atomic

EPOCH = (1980, 1, 1, 0, 0, 0)


def save(path, arrays):
    """Write {name: array} as an uncompressed .npz, atomically and deterministically."""
    with atomic.atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(name + ".npy", date_time=EPOCH)
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(arrays[name]), allow_pickle=False)


def load(path):
    """Read a .npz into {name: array}; object (pickled) arrays and unreadable files are
    refused with a UserError naming the file and what a weights file holds."""
    expected = "expected an .npz archive of arrays like layers.0.W (as yamlnet saves them)"
    try:
        with open(path, "rb") as f:  # before numpy, which takes other bytes for a pickle
            is_zip = zipfile.is_zipfile(f)
        if not is_zip:
            raise UserError(f"{path}: not an .npz file (not a zip archive); {expected}")
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except FileNotFoundError:
        raise UserError(f"{path}: weights file not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder, not a weights file") from None
    except UserError:
        raise
    except ValueError as e:
        if "pickle" in str(e).lower() or "object" in str(e).lower():
            raise UserError(f"{path}: holds object (pickled) arrays, which are refused; "
                            "save plain numeric arrays") from None
        raise UserError(f"{path}: not a readable .npz file ({e}); {expected}") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise UserError(f"{path}: not a readable .npz file ({e}); {expected}") from None
