"""``ray._private.worker`` as far as Ray's tests read it with an obvious shoal meaning:
``global_worker.node.unique_id`` (this process's node id),
``global_worker.current_job_id``, ``global_worker.core_worker``'s
``get_all_reference_counts()``, ``get_memory_store_size()`` (values held) and
``object_exists(ref)`` (in shared memory), actor scope tokens left out of both
counts; ``_unhandled_error_handler`` (assigned), and ``pickle`` (Ray's worker module
imports cloudpickle under that name).  Anything else is a Ray internal whose use
fails."""

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


def _actor_tokens(worker) -> set:
    """The scope tokens of the actors this process made (shoal/core/actor_scope.py):
    small put objects behind actor handles, which Ray does not count as objects."""
    scopes = worker.actors.scopes
    return set(scopes.by_token) | set(scopes.dead_tokens)


class _CoreWorker:
    """``core_worker.get_all_reference_counts()``: this process's reference table
    (shoal's ``references.refs``) as Ray reports it: the id's hex *as bytes* (Ray's
    keys are the C++ ``Hex()`` string, which Cython hands over as bytes; its tests
    compare them with ``ref.hex().encode()``) -> local / submitted."""

    def get_all_reference_counts(self):
        from shoal.core import context

        worker = context.current_worker_or_none()
        if worker is None:
            return {}
        for _ in range(10):  # the loop thread may change the table while we copy it
            try:
                rows = list(worker.references.refs.items())
                break
            except RuntimeError:
                continue
        else:
            rows = []
        tokens = _actor_tokens(worker)  # shoal's, not objects of the program's
        return {oid.hex().encode(): {"local": ref.local, "submitted": ref.submitted}
                for oid, ref in rows if oid not in tokens}

    def get_memory_store_size(self) -> int:
        """Values this process keeps in memory (Ray's in-process memory store: small
        values, and markers of those in shared memory): shoal's value table."""
        from shoal.core import context

        worker = context.current_worker_or_none()
        if worker is None:
            return 0
        tokens = _actor_tokens(worker)
        return sum(1 for oid in list(worker.value_table.values) if oid not in tokens)

    def object_exists(self, ref) -> bool:
        """Whether the object is in shared memory (Ray: in plasma): shoal's rule is
        Ray's, small values stay in their owner's memory and larger ones go to a
        node's store."""
        from shoal.core import context

        worker = context.current_worker_or_none()
        value = worker.value_table.get(ref.object_id) if worker is not None else None
        return value is not None and value.in_plasma

    def get_pending_children_task_ids(self, parent_task_id):
        """The unfinished tasks this process submitted from that task: shoal's
        ``TaskManager.pending_children`` (what a recursive cancel reaches)."""
        from shoal.core import context

        worker = context.current_worker_or_none()
        if worker is None:
            return []
        parent = parent_task_id.binary() if hasattr(parent_task_id, "binary") else bytes(
            parent_task_id)
        return [shoal.TaskID(task.spec.task_id)
                for task in worker.tasks.pending_children(parent)]

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _missing(f"ray._private.worker.global_worker.core_worker.{attr}")


class _GlobalWorker:
    node = _Node()
    core_worker = _CoreWorker()

    @property
    def current_job_id(self):
        return shoal.JobID.from_hex(shoal.get_runtime_context().get_job_id())

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _missing(f"ray._private.worker.global_worker.{attr}")


global_worker = _GlobalWorker()

from shoal.api.session import ShoalContext as RayContext  # noqa: E402,F401  (init's result)


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return _missing(f"ray._private.worker.{name}")


class _WorkerModule(type(shoal)):
    """Assigning ``ray._private.worker._unhandled_error_handler`` (Ray's tests do, to
    count unhandled errors) sets this process's handler of unread task errors."""

    def __setattr__(self, name, value):
        if name == "_unhandled_error_handler":
            from shoal.core import context

            worker = context.current_worker_or_none()
            if worker is not None:
                worker.unhandled.handler = value
        super().__setattr__(name, value)


import copyreg  # noqa: E402
import importlib  # noqa: E402
import sys  # noqa: E402

sys.modules[__name__].__class__ = _WorkerModule
# a module of a subclass pickles by name like any module (cloudpickle looks the
# reduction up in copyreg's table; without it, it tries the module's class)
copyreg.pickle(_WorkerModule, lambda module: (importlib.import_module, (module.__name__,)))
