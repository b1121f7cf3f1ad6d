"""Reading the warnings the cluster sends to this driver (``shoal.util.subscribe_warnings``):
too many calls queued to an actor, too many worker processes on a node.  They are
printed on the driver's stderr as they come; a subscription also hands them to the
program (see :mod:`shoal.core.cluster_warnings`)."""

from __future__ import annotations

from shoal.core import context
from shoal.core.cluster_warnings import ClusterWarning as ClusterWarning
from shoal.core.cluster_warnings import WarningSubscription
from shoal.core.cluster_warnings import WarningType as WarningType


def subscribe_warnings() -> WarningSubscription:
    """The warnings that reach this driver from now on: ``sub.get(timeout)`` returns the
    next (a ``ClusterWarning`` with ``type``, ``message``, ``job_id``, ``timestamp``) or
    None; ``sub.close()`` ends it."""
    worker = context.current_worker_or_none()
    if worker is None:
        raise RuntimeError("shoal is not initialized: call shoal.init() before "
                           "subscribe_warnings()")
    if worker.warnings is None:
        raise RuntimeError("subscribe_warnings() is for a driver: the cluster sends its "
                           "warnings to the job's driver, not to workers")
    return worker.warnings.subscribe()
