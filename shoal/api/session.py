"""A driver's session with its cluster: ``init`` (start a local cluster or
connect to one), ``shutdown``, and the worker every API call goes through.

One :class:`Runtime` per process holds what ``init`` made, with an explicit
state; worker processes register their core worker through
:mod:`shoal.core.context` instead, so the same API works inside tasks.  The
handles (remote functions, actors, placement groups) and the object calls
(:mod:`shoal.api.runtime`) sit above this module: ``ensure_worker`` starts a
session on first use.
"""

from __future__ import annotations

import atexit
import enum
import os
import sys
import threading
from typing import Any

from shoal import exceptions
from shoal.api.local_cluster import HeadProcess, launch_head
from shoal.core import context
from shoal.launch import resource_args
from shoal.rpc.messages import Method
from shoal.runtime_env import spec as env_spec
from shoal.runtime_env.client import client_for


class State(enum.Enum):
    NOT_STARTED = "not started"
    RUNNING = "running"


class Runtime:
    def __init__(self) -> None:
        self.state = State.NOT_STARTED
        self.lock = threading.RLock()
        self.head: HeadProcess | None = None
        self.dashboard: Any = None  # shoal.dashboard.launcher.LazyDashboard, local cluster
        self.worker: Any = None
        self.context: ShoalContext | None = None
        self.lost: str | None = None  # why the cluster is gone (see _watch_cluster)


_runtime = Runtime()

HEAD_START_TIMEOUT_S = 30.0

_INIT_KWARGS = {
    "include_dashboard", "dashboard_host", "dashboard_port", "logging_level",
    "logging_format", "log_to_driver", "configure_logging", "runtime_env",
    "_system_config", "_temp_dir", "local_mode", "job_config", "_node_ip_address",
    "labels", "_enable_object_reconstruction", "storage", "_plasma_directory",
    "object_spilling_directory", "_memory", "_redis_password", "num_nodes", "_token",
}


class ShoalContext(dict):
    """What ``init`` returns (Ray: ``RayContext``); also a dict of address info."""

    def __init__(self, info: dict) -> None:
        super().__init__(info)
        self.address_info = info

    def __enter__(self) -> ShoalContext:
        return self

    def __exit__(self, *exc: Any) -> None:
        shutdown()

    def disconnect(self) -> None:
        shutdown()


def _init_name(name: str, key: str | None = None) -> str:
    """How an argument of ``init`` is spelled in an error (``memory`` is ``_memory``)."""
    return resource_args.python_name("_memory" if name == "memory" else name, key)


def init(
    address: str | None = None,
    *,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    resources: dict | None = None,
    object_store_memory: int | None = None,
    namespace: str | None = None,
    ignore_reinit_error: bool = False,
    **kwargs: Any,
) -> ShoalContext:
    """Start a local cluster (no address) or connect to one; returns its info."""
    unknown = set(kwargs) - _INIT_KWARGS
    if unknown:
        raise ValueError(f"unknown argument(s) to shoal.init: {', '.join(sorted(unknown))}")
    node_args = resource_args.node_args(
        _init_name, num_cpus=num_cpus, num_gpus=num_gpus, resources=resources,
        object_store_memory=object_store_memory, memory=kwargs.get("_memory"))
    for name, value in (("address", address), ("namespace", namespace),
                        ("_node_ip_address", kwargs.get("_node_ip_address")),
                        ("_token", kwargs.get("_token"))):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"shoal.init: {name} must be a string, got {value!r}")
    job_config = kwargs.get("job_config")
    runtime_env = kwargs.get("runtime_env")
    if job_config is not None:
        namespace = namespace or job_config.ray_namespace
        if runtime_env is None:
            runtime_env = job_config.runtime_env or None
    runtime_env = env_spec.check(runtime_env, "shoal.init: runtime_env")
    with _runtime.lock:
        if context.current_worker_or_none() is not None and _runtime.state is State.NOT_STARTED:
            # inside a worker process: already connected
            if ignore_reinit_error:
                return ShoalContext({})
            raise RuntimeError("shoal.init() called inside a shoal worker, which is already "
                               "connected to its cluster")
        if _runtime.state is State.RUNNING:
            if ignore_reinit_error:
                return _runtime.context  # type: ignore[return-value]
            raise RuntimeError(
                "Maybe you called shoal.init twice by accident? shoal is already running; "
                "pass ignore_reinit_error=True to ignore this, or call shoal.shutdown() first."
            )
        address = _address_to_use(address)
        if address not in (None, "", "local") and kwargs.get("_system_config"):
            raise ValueError("shoal.init: _system_config cannot be given when connecting to "
                             f"an existing cluster ({address}); give it to the cluster's "
                             "head node when it starts")
        host = "127.0.0.1"
        spilling = _spilling_options(kwargs) + _preload_options(kwargs)
        from shoal.core import actor_shutdown

        actor_shutdown.configure(kwargs.get("_system_config"))
        dashboard_url = None
        dashboard_sock = None
        if address in (None, "", "local"):
            dashboard_sock = _dashboard_socket(kwargs)  # a taken port fails before any start
            head_ready = launch_head(**node_args, spilling=spilling)
            from shoal.core.core_worker import CoreWorker, Mode, WorkerConfig  # while it boots

            try:
                head = head_ready(HEAD_START_TIMEOUT_S)
            except BaseException:
                if dashboard_sock is not None:
                    dashboard_sock.close()
                raise
            token = head.token
            control_address = node_address = head.address
        else:
            from shoal.api.connect import resolve_address
            from shoal.core.core_worker import CoreWorker, Mode, WorkerConfig

            if node_args or spilling:
                given = ", ".join(sorted(map(_init_name, node_args))
                                  + (["object spilling options"] if spilling else []))
                raise ValueError(
                    f"when connecting to an existing cluster, {given} must not be given: "
                    "they belong to the nodes ('shoal start --num-cpus ...')")
            head = None
            dashboard_url = _known_dashboard_url(address)
            found = resolve_address(address, token=kwargs.get("_token"),
                                    node_ip_address=kwargs.get("_node_ip_address"))
            control_address, node_address = found.control_address, found.node_address
            token, host = found.token, found.host
        worker = CoreWorker(WorkerConfig(
            mode=Mode.DRIVER,
            control_address=control_address,
            node_address=node_address,
            token=token,
            host=host,
            namespace=namespace or "default",
            default_actor_lifetime=(job_config.default_actor_lifetime if job_config is not None
                                    else "non_detached"),
        ))
        try:
            worker.start()
        except BaseException:
            if dashboard_sock is not None:
                dashboard_sock.close()
            if head is not None:
                head.stop()
            raise
        if dashboard_sock is not None:
            from shoal.dashboard.launcher import LazyDashboard

            _runtime.dashboard = LazyDashboard(dashboard_sock, control_address, token,
                                               [head.log_dir],
                                               os.path.join(head.log_dir, "dashboard.err"))
            dashboard_url = _runtime.dashboard.url
        worker.runtime_envs = client_for(worker, runtime_env)
        _runtime.head = head
        _runtime.worker = worker
        _runtime.lost = None
        _runtime.state = State.RUNNING
        _watch_cluster(worker, control_address, node_address)
        _runtime.context = ShoalContext({
            "address": control_address,
            "node_id": worker.node_id,
            "session_dir": os.path.dirname(head.log_dir) if head else "",
            "job_id": worker.job_id,
            "namespace": worker.namespace,
            "dashboard_url": dashboard_url,
        })
        return _runtime.context


def _dashboard_socket(kwargs: dict) -> Any:
    """The dashboard's listening socket (see :mod:`shoal.dashboard.launcher`), or None
    with ``include_dashboard=False``; a clear error for bad or taken host/port."""
    include = kwargs.get("include_dashboard")
    if include not in (None, True, False):
        raise TypeError(f"shoal.init: include_dashboard must be True, False or None, got "
                        f"{include!r}")
    host, port = kwargs.get("dashboard_host"), kwargs.get("dashboard_port")
    if host is not None and not isinstance(host, str):
        raise TypeError(f"shoal.init: dashboard_host must be a string, got {host!r}")
    if include is False:
        return None
    from shoal.dashboard.launcher import bind

    return bind(host, port)


def _known_dashboard_url(address: str) -> str | None:
    """The dashboard ``shoal start --head`` started for the cluster at ``address``
    (``auto``: the one on this machine), if this machine knows it."""
    from shoal.launch import sessions

    record = (sessions.live_cluster(sessions.default_cluster()) if address == "auto"
              else sessions.known_cluster(address))
    return (record or {}).get("dashboard_url")


def _address_to_use(address: str | None) -> str | None:
    """The address ``init`` connects to: its argument, else SHOAL_ADDRESS, else
    RAY_ADDRESS.  A Ray Client address is refused here, naming where it came from."""
    source = "address"
    for variable in ("SHOAL_ADDRESS", "RAY_ADDRESS"):
        if address:
            break
        address, source = os.environ.get(variable), variable
    if address and address.startswith("ray://"):
        raise ValueError(
            f"shoal.init: Ray Client addresses are not supported ({source}={address!r}); "
            "give the head's HOST:PORT, or 'auto' for the head started on this machine "
            "(a driver needs a shoal node on its own machine)")
    return address


def _preload_options(kwargs: dict) -> list[str]:
    """The local cluster's node argument for Ray's
    ``_system_config["preload_python_modules"]``."""
    from shoal.launch.spilling import preload_options

    config = kwargs.get("_system_config")
    return preload_options(config.get("preload_python_modules")) \
        if isinstance(config, dict) else []


def _spilling_options(kwargs: dict) -> list[str]:
    """Node arguments from ``object_spilling_directory`` and Ray's ``_system_config``
    keys ``object_spilling_config`` (its ``directory_path``), ``object_spilling_threshold``
    and ``min_spilling_size``."""
    from shoal.launch.spilling import spilling_options

    config = kwargs.get("_system_config") or {}
    if not isinstance(config, dict):
        raise TypeError(f"_system_config must be a dict, got {config!r}")
    directory = kwargs.get("object_spilling_directory")
    spilling_config = config.get("object_spilling_config")
    if directory is None and spilling_config:
        import json

        parsed = json.loads(spilling_config) if isinstance(spilling_config, str) \
            else spilling_config
        directory = (parsed.get("params") or {}).get("directory_path")
    if directory is not None and not isinstance(directory, (str, list, tuple)):
        raise TypeError(f"object_spilling_directory must be a path or a list of paths, got "
                        f"{directory!r}")
    threshold = config.get("object_spilling_threshold")
    if threshold is not None and not (isinstance(threshold, (int, float))
                                      and 0 < threshold <= 1):
        raise ValueError(f"object_spilling_threshold must be a fraction in (0, 1], got "
                         f"{threshold!r}")
    min_size = config.get("min_spilling_size")
    if min_size is not None and not (isinstance(min_size, int) and min_size >= 0):
        raise ValueError(f"min_spilling_size must be a number of bytes >= 0, got {min_size!r}")
    return spilling_options(list(directory) if isinstance(directory, tuple) else directory,
                            threshold, min_size)


def shutdown() -> None:
    """Disconnect; stop the local cluster if this process started it."""
    worker = _runtime.worker
    if worker is not None and _runtime.state is State.RUNNING:
        from shoal.core import ref_futures

        ref_futures.close_callbacks(worker)  # none calls .remote() after this
    with _runtime.lock:
        if _runtime.state is not State.RUNNING:
            return
        worker, head, dashboard = _runtime.worker, _runtime.head, _runtime.dashboard
        _runtime.dashboard = None
        _runtime.state = State.NOT_STARTED
        _runtime.lost = None
        _runtime.worker = None
        _runtime.head = None
        _runtime.context = None
    try:
        if dashboard is not None:
            dashboard.stop()
        worker.shutdown()
    finally:
        if head is not None:
            head.stop()


atexit.register(shutdown)


def _watch_cluster(worker: Any, control_address: str, node_address: str) -> None:
    """Once the head or our node agent closes its connection, every API call
    raises :class:`ClusterLostError` saying so (instead of a bare connection error)."""

    def lost(what: str) -> None:
        if worker.shutting_down or _runtime.worker is not worker or _runtime.lost:
            return
        _runtime.lost = (
            f"this driver lost its shoal cluster: {what}. Calls fail until you call "
            "shoal.shutdown() (and shoal.init() again once the cluster is back)")
        print(f"shoal: error: {_runtime.lost}", file=sys.stderr, flush=True)

    def watch() -> None:
        for conn, what in (
            (worker.control, f"the connection to its head at {control_address} closed "
                             "(the head process exited or was killed)"),
            (worker.node, f"the connection to its node agent at {node_address} closed "
                          "(the node died or lost its head)"),
        ):
            conn.closed.add_done_callback(lambda _f, what=what: lost(what))

    worker.loop.call_soon_threadsafe(watch)


_LOSS_ERRORS = (ConnectionError, exceptions.WorkerCrashedError)


def _raise_if_lost(worker: Any, exc: BaseException) -> None:
    """Re-raise a connection-looking failure as ClusterLostError if the cluster is gone."""
    if isinstance(exc, exceptions.ClusterLostError):
        return
    reason = _runtime.lost
    if reason is None and worker is _runtime.worker and worker is not None:
        for conn, where in ((worker.control, "its head"), (worker.node, "its node agent")):
            if conn is not None and conn.closed.done():
                reason = f"this driver lost its shoal cluster: the connection to {where} closed"
    if reason is not None:
        raise exceptions.ClusterLostError(reason) from exc


def call_on_cluster(worker: Any, fn: Any, *args: Any) -> Any:
    """``fn(*args)``, with a failure caused by losing the cluster raised as
    ClusterLostError."""
    try:
        return fn(*args)
    except _LOSS_ERRORS as exc:
        _raise_if_lost(worker, exc)
        raise


def control_call(method: Method, body: Any = None) -> Any:
    """A request to the control store, as this session's worker."""
    worker = ensure_worker()
    return call_on_cluster(worker, worker.control_call, method, body)


def is_initialized() -> bool:
    return _runtime.state is State.RUNNING or context.current_worker_or_none() is not None


def ensure_worker() -> Any:
    worker = context.current_worker_or_none()
    if worker is not None:
        if _runtime.lost is not None:
            raise exceptions.ClusterLostError(_runtime.lost)
        return worker
    with _runtime.lock:
        if _runtime.state is not State.RUNNING:
            init()
        return _runtime.worker
