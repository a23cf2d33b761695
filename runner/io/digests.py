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
import mmap
import os
import threading

from runner.io import atomic
from runner.vocabulary import PATH_KEYS

DIGEST_CACHE = ".digests.json"
_jobs = {}  # absolute path -> ((size, mtime_ns) when hashing began, {"digest": hex})
_threads = []


def file_sha256(path, block=1 << 20) -> str:
    """Hex sha256 of a file, read in blocks of `block` bytes; OSError if it cannot be read.

    The block is a private anonymous map, not a bytearray: freed, it goes back to the
    system at once, where a freed malloc block of 16 MiB would raise glibc's mmap
    threshold and leave the fit's later arrays below that size in a heap that does not
    shrink (some 16 MiB more at the peak of a large fit)."""
    h, buf = hashlib.sha256(), mmap.mmap(-1, block)
    try:
        with memoryview(buf) as view, open(path, "rb") as f:
            while n := f.readinto(view):
                h.update(view[:n])
    finally:
        buf.close()
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
    folder of the file that gives them, as the loader does: the config, or a file it
    `extends`); [] when the file is not a small YAML mapping.

    The YAML is composed, not constructed (aliases are not expanded), and only from files
    of at most 64 KiB, at most _LEVELS bases deep: the loader proper, with its limits,
    has not seen them yet. A base that cannot be read is skipped."""
    try:
        top, roots = os.path.abspath(config_path), {}
        values = {key: _lookup(top, key.split("."), roots, 0)[1] for key in PATH_KEYS}
    except Exception:  # anything odd is for the loader to report
        return []
    base = os.path.dirname(top)
    for override in overrides:
        key, _, value = override.partition("=")
        if key.strip() in values:
            values[key.strip()] = os.path.normpath(os.path.join(base, value.strip()))
    return [v for v in values.values() if v]


_LEVELS = 10  # levels of `extends` followed (the loader refuses more: schemas/compose.py)


def _lookup(file, keys, roots, depth):
    """(found, path): whether `file` or a file it extends (the last listed wins) gives
    the value at `keys`, and that value as a path relative to the giving file's folder
    (None when it is not a string). `roots` holds the files composed so far."""
    import yaml

    if file not in roots:
        roots[file] = None
        try:
            if os.path.isfile(file) and os.path.getsize(file) <= 1 << 16:  # no pipes
                with open(file, encoding="utf-8") as f:
                    roots[file] = yaml.compose(f)
        except Exception:
            pass
    root = roots[file]
    found, value = _scalar(root, keys)
    if found:
        return True, value and os.path.normpath(os.path.join(os.path.dirname(file), value))
    extends = _scalar(root, ["extends"], whole=True)[1] if depth < _LEVELS else None
    refs = extends if isinstance(extends, list) else [extends] if extends else []
    for ref in reversed(refs):
        found, path = _lookup(os.path.join(os.path.dirname(file), ref), keys, roots, depth + 1)
        if found:
            return True, path
    return False, None


def _scalar(node, keys, whole=False):
    """(found, value) at `keys` under a composed YAML mapping node: found is False when
    a mapping on the way lacks the key (a base may give it); value is the string there,
    else None. With `whole`, a sequence of strings is given as a list."""
    import yaml

    if not isinstance(node, yaml.MappingNode):
        return False, None
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            return True, None  # something else is written above: it replaces the bases'
        node = next((v for k, v in node.value
                     if isinstance(k, yaml.ScalarNode) and k.value == key), None)
        if node is None:
            return False, None
    if whole and isinstance(node, yaml.SequenceNode):
        return True, [n.value for n in node.value if isinstance(n, yaml.ScalarNode) and n.value]
    return True, node.value if isinstance(node, yaml.ScalarNode) and node.value else None


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
