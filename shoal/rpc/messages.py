"""Every RPC method in the cluster, one enum so a typo fails at import time.

Grouped by the service that handles it.  Bodies are msgpack lists whose layout
is documented at the handler.
"""

from __future__ import annotations

import enum


@enum.unique
class Method(enum.IntEnum):
    # control store
    REGISTER_NODE = 1
    NODE_HEARTBEAT = 2
    GET_NODES = 3
    REGISTER_DRIVER = 4
    CREATE_ACTOR = 5
    GET_ACTOR = 6  # wait until the actor is placed (or dead); returns its record
    GET_NAMED_ACTOR = 7
    KILL_ACTOR = 8
    ACTOR_CREATED = 9  # node agent/worker -> control store: __init__ finished
    WORKER_DIED = 10  # node agent -> control store
    KV_PUT = 11
    KV_GET = 12
    KV_DELETE = 13
    SUBSCRIBE = 14
    CLUSTER_RESOURCES = 15
    PUBLISH_LOGS = 16
    LIST_ACTORS = 17
    CLUSTER_STATUS = 18  # nodes, their demand, actors waiting for a node
    LIST_STATE = 19  # state API: nodes, actors, and snapshots of every core worker
    READ_NODE_LOG = 20  # [node id, name, offset, max bytes]: NODE_LOG_READ on that node
    RELEASE_ACTOR_NAME = 21  # [actor id]: no handle to this dead actor is left
    KV_USER = 22  # [op, namespace, key, value, flag]: experimental.internal_kv

    # node agent
    REGISTER_WORKER = 30
    REQUEST_LEASE = 31
    RETURN_LEASE = 32
    CANCEL_LEASE_REQUESTS = 33
    WORKER_BLOCKED = 34
    WORKER_UNBLOCKED = 35
    STORE_CREATE = 36
    STORE_SEAL = 37
    STORE_GET = 38
    STORE_RELEASE = 39
    STORE_FREE = 40
    STORE_STATS = 41
    KILL_WORKER = 42
    LEASE_ACTOR_WORKER = 43
    NODE_INFO = 44
    STORE_PULL = 45  # pin objects, pulling from other nodes what is not here
    NODE_STATE = 46  # state API: this node's store, workers and core-worker snapshots
    NODE_LOG_READ = 47  # [name, offset, max bytes]: a chunk of one of this node's log files
    STORE_GET_IN_PLACE = 48  # STORE_GET, but a spilled object is pinned on disk, not restored

    # core worker
    PUSH_TASK = 60
    CANCEL_TASK = 61
    GET_OBJECT = 62
    ADD_BORROWER = 63
    REMOVE_BORROWER = 64
    GENERATOR_ITEM = 65
    CREATE_ACTOR_INSTANCE = 66
    EXIT_WORKER = 67
    ASSIGN_JOB = 68
    STEAL_TASKS = 69  # owner -> worker: hand back these queued tasks if not started
    RETIRE_WORKER = 78  # agent -> worker: max_calls lease returned; exit once owning nothing
    ADD_OBJECT_LOCATION = 70  # node agent -> owner: I hold a copy now (True: keep it)
    REMOVE_OBJECT_LOCATION = 71  # node agent -> owner: my copy was evicted
    WORKER_STATE = 72  # node agent -> core worker: objects/tasks snapshot (state API)
    RECOVER_OBJECT = 75  # reader -> owner: no copy reachable; rebuild it (lineage)
    ADOPT_OBJECT = 76  # put(_owner=actor): the actor's worker becomes the owner
    CANCEL_BY_REF = 77  # borrower -> owner: cancel the task making this object
    COLLECT_GARBAGE = 79  # node agent -> core worker: the store is filling up, gc.collect()
    # any process -> control store: [job id or "", type, text, time] for the drivers
    # (core/cluster_warnings.py); published on the ``warnings`` channel
    PUBLISH_WARNING = 85
    # owner -> control store: [actor id] the constructor's refs are ready; place it
    ACTOR_DEPENDENCIES_READY = 86

    # placement groups (control store); numbered apart from the rest
    CREATE_PLACEMENT_GROUP = 110
    REMOVE_PLACEMENT_GROUP = 111
    GET_PLACEMENT_GROUP = 112  # [pg_id, wait_s]: the record, once created/removed or after wait_s
    GET_NAMED_PLACEMENT_GROUP = 113
    LIST_PLACEMENT_GROUPS = 114
    # placement groups (node agent): the participant's side of the two-phase commit
    PREPARE_BUNDLES = 115
    COMMIT_BUNDLES = 116
    CANCEL_BUNDLES = 117

    # notifications pushed to subscribers
    PUBSUB_MESSAGE = 90
    LEASE_INFEASIBLE = 91


class Channel(enum.StrEnum):
    """The control store's pubsub channels (``SUBSCRIBE``, ``PUBSUB_MESSAGE``).  A
    str enum: the wire carries the plain name."""

    ACTOR = "actor"  # an actor's record changed (state, address): record.public()
    NODE = "node"  # a node joined or died: {node_id, alive, ...}
    JOB_FINISHED = "job_finished"  # a job's driver is gone: job id
    OWNER_DIED = "owner_died"  # a process that owned objects is gone: its address
    LOGS = "logs:"  # prefix: ``logs:<job id>`` carries that job's worker output
    WARNINGS = "warnings"  # warnings for drivers (core/cluster_warnings.py): their wire

    @staticmethod
    def logs(job_id: str) -> str:
        return f"{Channel.LOGS.value}{job_id}"
