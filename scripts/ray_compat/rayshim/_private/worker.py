"""``ray._private.worker`` as far as Ray's tests read it with an obvious shoal meaning:
``global_worker.node.unique_id`` (this process's node id) and
``global_worker.current_job_id``, and ``pickle`` (Ray's worker module imports
cloudpickle under that name).  Anything else is a Ray internal whose use fails."""

import cloudpickle as pickle  # noqa: F401

import shoal


def _missing(name):
    from ray import _Missing
    return _Missing(name)


class _Node:
    @property
    def unique_id(self):
        return shoal.get_runtime_context().get_node_id()

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _missing(f"ray._private.worker.global_worker.node.{attr}")


class _GlobalWorker:
    node = _Node()

    @property
    def current_job_id(self):
        return shoal.JobID.from_hex(shoal.get_runtime_context().get_job_id())

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _missing(f"ray._private.worker.global_worker.{attr}")


global_worker = _GlobalWorker()


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return _missing(f"ray._private.worker.{name}")
