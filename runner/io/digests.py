"""sha256 of input files, and hashing them early.

A run is named by the sha256 of its input files (docs/run-folders.md), which costs about 0.3 s per
400 MB. `prefetch(config_path, overrides)` reads the file paths of a config with plain
YAML and hashes those files on a background thread (hashlib releases the GIL while it
hashes), so that the digests are ready by the time the command has imported the rest of
yamlnet and validated the config. `prefetched(path, key)` then hands a digest over if
the file still has the size and modification time it had when hashing began.

Only stdlib and PyYAML are imported here, so that the thread starts before the heavy
imports. Nothing here reports a problem: a path that is wrong, or a config that does
not parse, is left to the normal checks, which then hash (or refuse) as before.
"""

import hashlib
import json
import os
import threading

from runner.io import atomic
from runner.vocabulary import PATH_KEYS

DIGEST_CACHE = ".digests.json"
_jobs = {}  # absolute path -> ((size, mtime_ns) when hashing began, {"digest": hex})
_threads = []


def file_sha256(path, block=1 << 20) -> str:
    """Hex sha256 of a file, read in blocks of `block` bytes; OSError if it cannot be read."""
    h, buf = hashlib.sha256(), bytearray(block)
    view = memoryview(buf)
    with open(path, "rb") as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def stat_key(path):
    """[size, mtime_ns] of a file, as git's index compares them."""
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


class DigestCache:
    """sha256 of input files, remembered by (path, size, mtime_ns) as git's index does,
    so a rerun does not hash a large data file again. Kept in `<out>/.digests.json`."""

    def __init__(self, out):
        self.file = os.path.join(out, DIGEST_CACHE)
        try:
            with open(self.file) as f:
                self.entries = json.load(f)
        except (OSError, ValueError):
            self.entries = {}
        if not isinstance(self.entries, dict):  # not ours, or damaged: start afresh
            self.entries = {}
        self.dirty = False

    def cached(self, path, key):
        """The remembered digest of `path` (absolute) if its stat key is `key`, else None."""
        entry = self.entries.get(path)
        return entry[2] if isinstance(entry, list) and entry[:2] == key else None

    def digest(self, path):
        path = os.path.abspath(path)
        key = stat_key(path)
        value = self.cached(path, key)
        if value is None:
            value = prefetched(path, key) or file_sha256(path)
            self.entries[path] = key + [value]
            self.dirty = True
        return value

    def save(self):
        if self.dirty and os.path.isdir(os.path.dirname(self.file)):
            atomic.write_text(self.file, json.dumps(self.entries, indent=0))
            self.dirty = False


def config_paths(config_path, overrides=()):
    """Absolute paths of the input files a config names (relative ones are taken from the
    config's folder, as the loader does); [] when the file is not a small YAML mapping.

    The YAML is composed, not constructed (aliases are not expanded), and only from a
    file of at most 64 KiB: the loader proper, with its limits, has not seen it yet."""
    import yaml

    try:
        if os.path.getsize(config_path) > 1 << 16:
            return []
        with open(config_path, encoding="utf-8") as f:
            root = yaml.compose(f)
        values = {key: _scalar(root, key.split(".")) for key in PATH_KEYS}
    except Exception:  # anything odd is for the loader to report
        return []
    for override in overrides:
        key, _, value = override.partition("=")
        if key.strip() in values:
            values[key.strip()] = value.strip()
    base = os.path.dirname(os.path.abspath(config_path))
    return [os.path.normpath(os.path.join(base, v)) for v in values.values() if v]


def _scalar(node, keys):
    """The string at `keys` under a composed YAML mapping node, or None."""
    import yaml

    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            return None
        node = next((v for k, v in node.value
                     if isinstance(k, yaml.ScalarNode) and k.value == key), None)
    return node.value if isinstance(node, yaml.ScalarNode) and node.value else None


def prefetch(config_path, overrides=(), out="runs"):
    """Start hashing, on a daemon thread, the input files of a config that the digest
    cache of `out` does not already know."""
    cache, todo = DigestCache(out), []
    for path in config_paths(config_path, overrides):
        try:
            if path in _jobs or not os.path.isfile(path):
                continue
            key = stat_key(path)
        except OSError:
            continue
        if cache.cached(path, key) is None:
            _jobs[path] = (key, {})
            todo.append((path, _jobs[path][1]))
    if todo:
        thread = threading.Thread(target=_hash_all, args=(todo,), daemon=True,
                                  name="yamlnet-digests")
        _threads.append(thread)
        thread.start()


def _hash_all(todo):
    """Hash each (path, box) of `todo` into box["digest"]."""
    for path, box in todo:
        try:
            # large blocks: the thread takes the GIL back once per block, and each time
            # may wait out the main thread's switch interval (5 ms)
            box["digest"] = file_sha256(path, block=1 << 24)
        except OSError:
            pass


def prefetched(path, key):
    """The digest prefetch() computed for `path` (absolute) if the file's stat key is
    still `key`, else None; waits for the hashing to finish."""
    job = _jobs.pop(path, None)
    if job is None or job[0] != key:
        return None
    for thread in _threads:
        thread.join()
    return job[1].get("digest")
