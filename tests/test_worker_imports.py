"""What a node's processes import: shoal itself from where the driver imported it,
user modules from the driver's directories (see shoal/core/import_path.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.utils import SESSION_TAG_ENV, STARTED_DRIVER_PIDS, stop_driver, subprocess_env

pytestmark = pytest.mark.timeout(90)

DRIVER = """
import shoal

shoal.init(num_cpus=1)


@shoal.remote
def task():
    import shoal
    import user_module  # lives in the driver's working directory

    return shoal.__file__, shoal.get_runtime_context().get_task_id() is not None, user_module.X


@shoal.remote
class Actor:
    def where(self):
        import shoal

        return shoal.__file__, shoal.get_runtime_context().get_actor_id() is not None


print("TASK", shoal.get(task.remote(), timeout=60))
print("ACTOR", shoal.get(Actor.remote().where.remote(), timeout=60))
print("DRIVER", shoal.__file__)
shoal.shutdown()
"""


def run_driver(script, cwd, env: dict) -> tuple[int, dict[str, str], str]:
    """Run a driver script to its end (stopped whatever happens); returns its exit
    code, its output lines ``KEY rest`` as a dict, and its stderr."""
    proc = subprocess.Popen([sys.executable, str(script)], cwd=str(cwd), env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    STARTED_DRIVER_PIDS.add(proc.pid)
    try:
        out, err = proc.communicate(timeout=80)
    finally:
        stop_driver(proc)
    return proc.returncode, dict(line.split(" ", 1) for line in out.splitlines()
                                 if " " in line), err


def test_a_shoal_folder_in_the_working_directory_does_not_shadow_shoal(tmp_path):
    """Workers used to run with the node's working directory first on sys.path, so
    an empty ``shoal/`` there replaced the package in every worker ("module 'shoal'
    has no attribute 'get_runtime_context'")."""
    workdir = tmp_path / "work"
    (workdir / "shoal").mkdir(parents=True)
    (workdir / "shoal" / "__init__.py").write_text("")
    (workdir / "user_module.py").write_text("X = 42\n")
    script = tmp_path / "driver" / "driver.py"  # elsewhere: the driver imports the real shoal
    script.parent.mkdir()
    script.write_text(DRIVER)
    returncode, lines, err = run_driver(script, workdir,
                                        subprocess_env(os.environ[SESSION_TAG_ENV]))
    assert returncode == 0, err[-3000:]
    driver_shoal = lines["DRIVER"]
    assert driver_shoal != str(workdir / "shoal" / "__init__.py")
    assert lines["TASK"] == repr((driver_shoal, True, 42))
    assert lines["ACTOR"] == repr((driver_shoal, True))


BROKEN_WORKER_DRIVER = """
import time
import shoal

shoal.init(num_cpus=1)


@shoal.remote
def task():
    return 1


start = time.monotonic()
try:
    shoal.get(task.remote())  # no timeout: it must end by itself
except Exception as exc:
    print("ERROR", type(exc).__name__, round(time.monotonic() - start, 1))
    print("MESSAGE", " ".join(str(exc).split()))
shoal.shutdown()
"""


def test_workers_that_die_while_starting_fail_the_task_with_their_stderr(tmp_path):
    """A worker that cannot start (here: site-packages raising at import, as a broken
    install would) was restarted for ever and the task pended for ever."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import os, sys\n"
        "if os.environ.get('SHOAL_WORKER_ID'):\n"
        "    sys.stderr.write('broken install: cannot import things\\n')\n"
        "    raise SystemExit(3)\n")
    script = tmp_path / "driver.py"
    script.write_text(BROKEN_WORKER_DRIVER)
    env = subprocess_env(os.environ[SESSION_TAG_ENV])
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    env["SHOAL_NO_ZYGOTE"] = "1"  # exec'd workers run sitecustomize with their own id
    _, lines, err = run_driver(script, tmp_path, env)
    assert "ERROR" in lines, (lines, err[-3000:])
    kind, seconds = lines["ERROR"].split()
    assert kind == "WorkerCrashedError" and float(seconds) < 30
    assert "died while starting" in lines["MESSAGE"]
    assert "broken install: cannot import things" in lines["MESSAGE"]
