"""Input digests: the cache by (path, size, mtime), and hashing started before the heavy
imports of `yamlnet run` (runner.digests)."""

import hashlib
import os

import pytest

from runner.io import digests
from schemas import PATH_KEYS


def sha(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def project(tmp_path):
    """A config whose data path is relative to the config's folder."""
    (tmp_path / "cfg").mkdir()
    data = tmp_path / "cfg" / "table.csv"
    data.write_bytes(b"x,y\n" + b"1,2\n" * 50_000)
    config = tmp_path / "cfg" / "run.yaml"
    config.write_text("name: t\ndata:\n  path: table.csv\n  targets: [y]\n"
                      "model:\n  layers: [{units: 1}]\n")
    return config, data


def wait():
    for thread in digests._threads:
        thread.join()


def test_path_keys_match_the_schema():
    assert digests.PATH_KEYS == PATH_KEYS


def test_config_paths_resolve_like_the_loader(project, tmp_path):
    config, data = project
    assert digests.config_paths(config) == [str(data)]
    other = tmp_path / "other.csv"
    assert digests.config_paths(config, [f"data.path={other}"]) == [str(other)]
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    assert digests.config_paths(tmp_path / "bad.yaml") == []
    assert digests.config_paths(tmp_path / "missing.yaml") == []


def test_a_prefetched_digest_is_used(project, tmp_path, monkeypatch):
    config, data = project
    digests.prefetch(config, (), tmp_path / "runs")
    wait()

    def no_second_hash(*args, **kwargs):
        raise AssertionError("the file was hashed again")

    monkeypatch.setattr(digests, "file_sha256", no_second_hash)
    assert digests.DigestCache(tmp_path / "runs").digest(data) == sha(data.read_bytes())


def test_a_file_changed_after_the_prefetch_is_hashed_again(project, tmp_path):
    config, data = project
    digests.prefetch(config, (), tmp_path / "runs")
    wait()
    data.write_bytes(b"x,y\n3,4\n")  # another size and mtime
    assert digests.DigestCache(tmp_path / "runs").digest(data) == sha(b"x,y\n3,4\n")


def test_files_the_cache_knows_are_not_hashed(project, tmp_path, monkeypatch):
    config, data = project
    out = tmp_path / "runs"
    out.mkdir()
    cache = digests.DigestCache(out)
    cache.digest(data)
    cache.save()
    started = []
    monkeypatch.setattr(digests, "_hash_all", lambda todo: started.append(todo))
    digests.prefetch(config, (), out)
    wait()
    assert started == []
    assert digests.DigestCache(out).cached(str(data), digests.stat_key(data)) == sha(data.read_bytes())


def test_a_run_remembers_its_input_digests(project, tmp_path):
    """After one `run`, the digest of its data file is in <out>/.digests.json, keyed by
    the file's size and mtime, so the next run does not hash it again."""
    from runner.runs import experiment
    from schemas import load_config

    config, data = project
    out = tmp_path / "runs"
    p = experiment.plan(load_config(str(config)), str(out))
    experiment.execute(p)
    assert os.path.exists(out / digests.DIGEST_CACHE)
    cached = digests.DigestCache(out).cached(str(data), digests.stat_key(data))
    assert cached == sha(data.read_bytes()) == p.digests["data.path"]


@pytest.mark.parametrize("text", [
    "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi")) + "data: {path: *i}\n",  # alias bomb
    "[" * 5000 + "]" * 5000,  # nesting deeper than the recursion limit
    "data: {path: [1, 2]}\n",  # not a string
])
def test_hostile_configs_give_no_paths_and_no_error(tmp_path, text):
    config = tmp_path / "c.yaml"
    config.write_text(text)
    assert digests.config_paths(config) == []


@pytest.mark.parametrize("text", ["[]", "{\"x\": 1", "null", "{\"/a\": [1, 2]}"])
def test_a_damaged_cache_file_is_ignored(project, tmp_path, text):
    """A .digests.json that is not a mapping of [size, mtime, digest] is no cache hit."""
    config, data = project
    out = tmp_path / "runs"
    out.mkdir()
    (out / digests.DIGEST_CACHE).write_text(text)
    assert digests.DigestCache(out).digest(data) == sha(data.read_bytes())
