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
    proc = subprocess.Popen([sys.executable, str(script)], cwd=str(workdir),
                            env=subprocess_env(os.environ[SESSION_TAG_ENV]),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    STARTED_DRIVER_PIDS.add(proc.pid)
    try:
        out, err = proc.communicate(timeout=80)
    finally:
        stop_driver(proc)
    assert proc.returncode == 0, err[-3000:]
    lines = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    driver_shoal = lines["DRIVER"]
    assert driver_shoal != str(workdir / "shoal" / "__init__.py")
    assert lines["TASK"] == repr((driver_shoal, True, 42))
    assert lines["ACTOR"] == repr((driver_shoal, True))
