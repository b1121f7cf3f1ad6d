"""init(job_config=JobConfig(...)) with real processes."""

from __future__ import annotations

import os
import signal

import pytest

import shoal
from shoal.exceptions import ActorError
from shoal.job_config import JobConfig
from tests.utils import wait_for_condition

GET_TIMEOUT = 60


@shoal.remote
class Child:
    def ready(self):
        return "ok"


@shoal.remote
class Owner:
    def make_child(self):
        self.child = Child.remote()  # no lifetime given: the job's default
        assert shoal.get(self.child.ready.remote(), timeout=GET_TIMEOUT) == "ok"
        return self.child

    def pid(self):
        return os.getpid()


def test_job_config_sets_namespace_env_and_default_actor_lifetime(shutdown_only):
    shoal.init(num_cpus=2, job_config=JobConfig(
        default_actor_lifetime="detached", ray_namespace="configured",
        runtime_env={"env_vars": {"FROM_JOB_CONFIG": "yes"}}))
    assert shoal.get_runtime_context().namespace == "configured"

    @shoal.remote
    def read_env():
        return os.environ.get("FROM_JOB_CONFIG")

    assert shoal.get(read_env.remote(), timeout=GET_TIMEOUT) == "yes"
    owner = Owner.remote()
    child = shoal.get(owner.make_child.remote(), timeout=GET_TIMEOUT)
    os.kill(shoal.get(owner.pid.remote(), timeout=GET_TIMEOUT), signal.SIGKILL)

    def owner_dead():
        try:
            shoal.get(owner.pid.remote(), timeout=GET_TIMEOUT)
            return False
        except ActorError:
            return True

    wait_for_condition(owner_dead)
    # detached by the job's default: it outlives its owner
    assert shoal.get(child.ready.remote(), timeout=GET_TIMEOUT) == "ok"
    shoal.kill(child)


def test_job_config_rejects_bad_values():
    with pytest.raises(ValueError, match="default_actor_lifetime"):
        JobConfig(default_actor_lifetime="sometimes")


def test_another_driver_joins_a_cluster_started_by_init_by_its_address(shutdown_only,
                                                                      tmp_path):
    import subprocess
    import sys

    ctx = shoal.init(num_cpus=1)
    script = tmp_path / "second_driver.py"
    script.write_text(
        "import sys, shoal\n"
        "shoal.init(sys.argv[1])\n"
        "@shoal.remote\n"
        "def f():\n"
        "    return 'joined'\n"
        "print(shoal.get(f.remote(), timeout=60))\n")
    from tests.utils import REPO_ROOT

    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run([sys.executable, str(script), ctx["address"]], capture_output=True,
                         text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("joined")


def test_kill_to_restart_of_an_actor_being_created_uses_a_restart(shutdown_only):
    shoal.init(num_cpus=1)

    @shoal.remote(num_cpus=1)
    class Busy:
        def ping(self):
            return "pong"

    actor = Busy.options(max_restarts=1, max_task_retries=-1).remote()
    shoal.kill(actor, no_restart=False)  # while pending: its one restart
    assert shoal.get(actor.ping.remote(), timeout=GET_TIMEOUT) == "pong"
    shoal.kill(actor, no_restart=False)  # no restart left: dead, its CPU free
    other = Busy.remote()
    assert shoal.get(other.ping.remote(), timeout=GET_TIMEOUT) == "pong"
