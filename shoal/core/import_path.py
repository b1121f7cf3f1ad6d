"""Where shoal's processes import code from: shoal itself, and the job's code.

``python -m shoal.node.main`` would put the working directory first on
``sys.path``, so a folder named ``shoal`` there (a user's checkout, a data
folder) would be imported instead of the real package by the node and by every
worker, which then fail with ``module 'shoal' has no attribute ...``.  Our own
processes (head, node, fork server, exec'd worker) therefore start with ``-P``
(no working directory on the path) and import shoal from the directory this
process imported it from, :data:`SHOAL_ROOT`; that entry is removed again once
shoal is imported, so it shadows nothing for user code.

User code still finds what the driver could import: a worker assigned to a job
puts the driver's ``sys.path`` first on its own (see
``Executor.handle_assign_job``), with the driver's working directory right after
the script's directory, as Ray does.  By then ``shoal`` is imported, and its
submodules come from ``shoal.__path__``, so nothing on that path can replace it.
"""

from __future__ import annotations

import os
import sys

# The directory that holds the shoal package this process runs.
SHOAL_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_BOOT = ("import sys; sys.path.insert(0, {root!r}); import shoal; del sys.path[0]; "
         "import runpy; runpy.run_module({module!r}, run_name='__main__', alter_sys=True)")


def own_module_command(module: str, *args: str, python: str | None = None) -> list[str]:
    """argv that runs ``module`` (like ``python -m module args``) in a new
    interpreter (``python``, default this one) that imports shoal from
    :data:`SHOAL_ROOT`, never from its working directory."""
    return [python or sys.executable, "-P", "-c",
            _BOOT.format(root=SHOAL_ROOT, module=module), *args]


def driver_import_path() -> list[str]:
    """The driver's ``sys.path`` as its workers should see it: ``""`` spelled out
    as the working directory, and the working directory after the script's
    directory if it is not on the path already."""
    cwd = os.getcwd()
    paths = [p or cwd for p in sys.path]
    if cwd not in paths:
        paths.insert(1 if paths else 0, cwd)
    return list(dict.fromkeys(paths))
