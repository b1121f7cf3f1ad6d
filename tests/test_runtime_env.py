"""Runtime environments with real workers: env_vars, working_dir, py_modules, pip.

The node's cache of packages and virtualenvs is pointed at this module's own
temporary folder (SHOAL_RUNTIME_RESOURCES, read by the node agent), so "set up
once, cached by hash" is observable and nothing leaks into other runs.
"""

from __future__ import annotations

import os
import zipfile

import pytest

import shoal
from shoal.exceptions import RuntimeEnvSetupError

GET_TIMEOUT = 120


@pytest.fixture(scope="module")
def env_root(tmp_path_factory):
    return tmp_path_factory.mktemp("runtime_resources")


@pytest.fixture(scope="module")
def cluster(env_root):
    if shoal.is_initialized():
        shoal.shutdown()
    old = os.environ.get("SHOAL_RUNTIME_RESOURCES")
    os.environ["SHOAL_RUNTIME_RESOURCES"] = str(env_root)
    try:
        yield shoal.init(num_cpus=2, runtime_env={"env_vars": {"JOB_VAR": "job",
                                                              "SHARED": "from-job"}})
    finally:
        shoal.shutdown()
        if old is None:
            os.environ.pop("SHOAL_RUNTIME_RESOURCES", None)
        else:
            os.environ["SHOAL_RUNTIME_RESOURCES"] = old


@shoal.remote
def environ(*names):
    return {name: os.environ.get(name) for name in names}


@shoal.remote
def worker_pid():
    return os.getpid()


@shoal.remote
def cwd_and_file(name):
    with open(name) as f:
        return os.getcwd(), f.read()


@shoal.remote
def import_value(module):
    import importlib

    return importlib.import_module(module).VALUE


def make_package(root, name, value):
    pkg = root / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(f"VALUE = {value!r}\n")
    return pkg


def make_wheel(dest, name, version, value):
    """A minimal pure-Python wheel, so pip installs it without a build backend or index."""
    path = dest / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}/__init__.py", f"VALUE = {value!r}\n")
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: shoal-tests\n"
                                    "Root-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", "")
    return path


def test_job_env_vars_reach_tasks_and_merge_with_the_task_env(cluster):
    names = ("JOB_VAR", "SHARED", "TASK_VAR")
    assert shoal.get(environ.remote(*names), timeout=GET_TIMEOUT) == {
        "JOB_VAR": "job", "SHARED": "from-job", "TASK_VAR": None}
    task_env = {"env_vars": {"TASK_VAR": "task", "SHARED": "from-task"}}
    assert shoal.get(environ.options(runtime_env=task_env).remote(*names),
                     timeout=GET_TIMEOUT) == {
        "JOB_VAR": "job", "SHARED": "from-task", "TASK_VAR": "task"}


def test_env_var_values_can_reference_the_node_environment(cluster):
    env = {"env_vars": {"MY_PATH": "/opt/extra:${PATH}"}}
    got = shoal.get(environ.options(runtime_env=env).remote("MY_PATH"), timeout=GET_TIMEOUT)
    assert got["MY_PATH"].startswith("/opt/extra:/") and "${" not in got["MY_PATH"]


def test_workers_are_reused_only_for_the_same_env(cluster):
    env_a = {"env_vars": {"WHICH": "a"}}
    env_b = {"env_vars": {"WHICH": "b"}}
    pids_a = {shoal.get(worker_pid.options(runtime_env=env_a).remote(), timeout=GET_TIMEOUT)
              for _ in range(3)}
    pid_b = shoal.get(worker_pid.options(runtime_env=env_b).remote(), timeout=GET_TIMEOUT)
    pid_job = shoal.get(worker_pid.remote(), timeout=GET_TIMEOUT)  # the job's env
    assert pid_b not in pids_a and pid_job not in pids_a | {pid_b}
    # sequential calls of one env land on a worker of that env, started once
    assert len(pids_a) == 1


def test_working_dir_is_the_cwd_and_importable_and_unpacked_once(cluster, tmp_path, env_root):
    work = tmp_path / "project"
    work.mkdir()
    (work / "data.txt").write_text("payload")
    make_package(work, "projmod", 11)
    (work / "__pycache__").mkdir()
    (work / "__pycache__" / "junk.pyc").write_bytes(b"x")
    env = {"working_dir": str(work)}
    cwd, text = shoal.get(cwd_and_file.options(runtime_env=env).remote("data.txt"),
                          timeout=GET_TIMEOUT)
    assert text == "payload"
    assert cwd.startswith(str(env_root)) and not os.path.exists(
        os.path.join(cwd, "__pycache__", "junk.pyc"))
    assert shoal.get(import_value.options(runtime_env=env).remote("projmod"),
                     timeout=GET_TIMEOUT) == 11
    packages = os.listdir(env_root / "pkg")
    # a second env with the same directory (and other env vars) uses the same package
    env2 = {"working_dir": str(work), "env_vars": {"OTHER": "1"}}
    assert shoal.get(cwd_and_file.options(runtime_env=env2).remote("data.txt"),
                     timeout=GET_TIMEOUT)[0] == cwd
    assert os.listdir(env_root / "pkg") == packages


def test_py_modules_are_importable(cluster, tmp_path):
    pkg = make_package(tmp_path, "shipped_mod", "shipped")
    env = {"py_modules": [str(pkg)]}
    assert shoal.get(import_value.options(runtime_env=env).remote("shipped_mod"),
                     timeout=GET_TIMEOUT) == "shipped"


def test_actor_runs_in_its_env_and_child_tasks_inherit_it(cluster, tmp_path):
    @shoal.remote
    class Probe:
        def env(self):
            return os.environ.get("ACTOR_VAR"), os.environ.get("JOB_VAR")

        def child_env(self):
            return shoal.get(environ.remote("ACTOR_VAR", "JOB_VAR"), timeout=GET_TIMEOUT)

    actor = Probe.options(runtime_env={"env_vars": {"ACTOR_VAR": "actor"}}).remote()
    assert shoal.get(actor.env.remote(), timeout=GET_TIMEOUT) == ("actor", "job")
    assert shoal.get(actor.child_env.remote(), timeout=GET_TIMEOUT) == {
        "ACTOR_VAR": "actor", "JOB_VAR": "job"}


def test_pip_installs_into_a_cached_virtualenv_that_still_imports_shoal(cluster, tmp_path,
                                                                        env_root):
    wheel = make_wheel(tmp_path, "shoal_rt_tiny", "1.0", 7)

    @shoal.remote
    def probe():
        import sys

        import shoal_rt_tiny

        import shoal as inner

        return shoal_rt_tiny.VALUE, sys.prefix, inner.__name__

    env = {"pip": [str(wheel)]}
    value, prefix, name = shoal.get(probe.options(runtime_env=env).remote(),
                                    timeout=GET_TIMEOUT)
    assert (value, name) == (7, "shoal")
    assert prefix.startswith(str(env_root / "pip"))
    assert len(os.listdir(env_root / "pip")) == 1  # built once, in place
    # the package is only in that env
    with pytest.raises(ModuleNotFoundError):
        shoal.get(import_value.remote("shoal_rt_tiny"), timeout=GET_TIMEOUT)


def test_failing_pip_env_raises_runtime_env_setup_error_with_pips_output(cluster, tmp_path):
    env = {"pip": [str(tmp_path / "missing-0.1-py3-none-any.whl")]}
    for _ in range(2):  # the second time from the node's cache of the failure
        with pytest.raises(RuntimeEnvSetupError, match="missing-0.1-py3-none-any.whl"):
            shoal.get(worker_pid.options(runtime_env=env).remote(), timeout=GET_TIMEOUT)


def test_actor_with_a_failing_env_dies_naming_the_setup_error(cluster, tmp_path):
    @shoal.remote
    class Never:
        def ping(self):
            return 1

    actor = Never.options(runtime_env={"pip": [str(tmp_path / "nope-1-py3-none-any.whl")]}
                          ).remote()
    with pytest.raises(shoal.exceptions.ActorDiedError, match="RuntimeEnvSetupError"):
        shoal.get(actor.ping.remote(), timeout=GET_TIMEOUT)
