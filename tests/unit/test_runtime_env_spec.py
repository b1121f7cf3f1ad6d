"""Pure parts of runtime environments, ids, JobConfig and inspect_serializability."""

from __future__ import annotations

import io
import threading

import pytest

from shoal.api.id_types import ActorID, JobID, NodeID
from shoal.job_config import JobConfig
from shoal.runtime_env import RuntimeEnv, packaging, spec
from shoal.util.check_serialize import inspect_serializability


def test_merge_replaces_fields_but_merges_env_vars():
    parent = {"env_vars": {"A": "1", "B": "1"}, "working_dir": "/p", "pip": ["x"]}
    child = {"env_vars": {"B": "2", "C": "2"}, "working_dir": "/c"}
    assert spec.merge(parent, child) == {"env_vars": {"A": "1", "B": "2", "C": "2"},
                                         "working_dir": "/c", "pip": ["x"]}
    assert spec.merge(None, None) == {}


def test_env_hash_is_stable_and_empty_for_no_env():
    assert spec.env_hash({}) == ""
    a = spec.env_hash({"env_vars": {"A": "1", "B": "2"}})
    assert a == spec.env_hash({"env_vars": {"B": "2", "A": "1"}}) != spec.env_hash(
        {"env_vars": {"A": "1"}})


def test_check_names_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="'conda' is not supported"):
        spec.check({"conda": "env"})
    with pytest.raises(ValueError, match="unknown field 'workdir'"):
        spec.check({"workdir": "."})
    with pytest.raises(TypeError, match="env_vars"):
        spec.check({"env_vars": {"A": 1}})
    req = tmp_path / "requirements.txt"
    req.write_text("# deps\nfoo==1\n\nbar  # why\n")
    assert spec.check({"pip": str(req)})["pip"] == ["foo==1", "bar"]
    assert spec.check({"pip": {"packages": ["baz"]}})["pip"] == ["baz"]
    assert RuntimeEnv(env_vars={"A": "1"}) == {"env_vars": {"A": "1"}}


def test_expand_env_vars_substitutes_only_braced_names():
    base = {"PATH": "/bin", "HOME": "/root"}
    assert spec.expand_env_vars({"P": "/x:${PATH}", "H": "$HOME/${NOPE}y"}, base) == {
        "P": "/x:/bin", "H": "$HOME/y"}


def test_zip_is_deterministic_and_honours_excludes(tmp_path):
    root = tmp_path / "d"
    (root / "sub").mkdir(parents=True)
    (root / "a.py").write_text("a")
    (root / "sub" / "b.txt").write_text("b")
    (root / "skip.log").write_text("x")
    one = packaging.zip_directory(str(root), ["*.log"])
    (root / "a.py").touch()  # a new mtime: same bytes
    assert packaging.zip_directory(str(root), ["*.log"]) == one
    import zipfile

    names = zipfile.ZipFile(io.BytesIO(one)).namelist()
    assert sorted(names) == ["a.py", "sub/b.txt"]
    digest = packaging.package_hash(one)
    path = packaging.unpack(str(tmp_path / "cache"), digest, one)
    assert (tmp_path / "cache" / "pkg" / digest / "sub" / "b.txt").read_text() == "b"
    assert packaging.unpack(str(tmp_path / "cache"), digest, b"ignored: cached") == path
    with pytest.raises(ValueError, match="does not match"):
        packaging.unpack(str(tmp_path / "cache"), "0" * 24, one)


def test_id_classes_convert_and_check_sizes():
    job = JobID.from_int(7)
    assert job.hex() == "00000007" and JobID.from_hex(job.hex()) == job and job.int() == 7
    assert ActorID.nil().is_nil() and not ActorID.from_random().is_nil()
    node = NodeID.from_random()
    assert NodeID.from_binary(node.binary()) == node and hash(node) == hash(NodeID(node.binary()))
    assert node != ActorID.nil()
    with pytest.raises(ValueError, match="must be 16 bytes"):
        ActorID(b"short")
    with pytest.raises(ValueError, match="not a hex string"):
        NodeID.from_hex("zz")


def test_job_config_checks_its_fields():
    config = JobConfig(runtime_env={"env_vars": {"A": "1"}}, ray_namespace="ns",
                       metadata={"k": "v"})
    assert config.runtime_env == {"env_vars": {"A": "1"}} and config.ray_namespace == "ns"
    with pytest.raises(ValueError):
        JobConfig(default_actor_lifetime="forever")
    with pytest.raises(TypeError):
        JobConfig(runtime_env=["pip"])
    with pytest.raises(ValueError, match="'conda'"):
        config.set_runtime_env({"conda": "x"}, validate=True)


def test_inspect_serializability_names_the_culprit():
    lock = threading.Lock()

    def uses_lock():
        return lock

    out = io.StringIO()
    ok, failures = inspect_serializability(uses_lock, print_file=out)
    assert not ok and {f.name for f in failures} == {"lock"}
    assert "lock" in out.getvalue()
    assert inspect_serializability(lambda: 1, print_file=io.StringIO())[0]
