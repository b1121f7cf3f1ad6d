"""What a node process does between its arguments and serving: listen, start the
control store (head) or join one, start the agent, register, announce itself
(see :mod:`shoal.node.main`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import sys
import threading

from shoal._version import __version__
from shoal.launch.control_client import ClusterConnectError, open_control
from shoal.launch.sessions import READY_PREFIX, session_root
from shoal.node.accelerators import detect_gpus, gpu_ids
from shoal.node.agent import NodeAgent, NodeConfig
from shoal.node.object_store.allocator import ALIGNMENT
from shoal.rpc.messages import Channel, Method
from shoal.rpc.protocol import VersionMismatchError
from shoal.rpc.transport import RemoteError, Router, serve

log = logging.getLogger("shoal.node")


def _total_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 8 << 30


def default_object_store_memory() -> int:
    total = _total_memory()
    shm = os.statvfs("/dev/shm")
    shm_size = shm.f_bsize * shm.f_blocks
    return int(min(total * 0.3, shm_size * 0.8))


def default_spill_root(session: str) -> str:
    """Spilled objects go under the session folder unless told otherwise."""
    return os.path.join(session_root(), session, "spill")


# the resource only the head node has (Ray's name), one unit
HEAD_NODE_RESOURCE = "node:__internal_head__"


class StartError(Exception):
    """This node could not start or join its head; the message says why."""


async def join_head(router: Router, token: str, address: str, name: str,
                    timeout: float) -> object:
    """An authenticated connection to the head's control store at ``address``,
    or a :class:`StartError` naming it within ``timeout`` seconds."""
    try:
        return await open_control(router, token, address, name=name, timeout=timeout,
                                  who="this node")
    except (ClusterConnectError, VersionMismatchError) as exc:
        raise StartError(str(exc)) from None


async def register(control_conn, agent: NodeAgent, address: str, timeout: float) -> None:
    info = agent.info()
    info["hostname"] = socket.gethostname()
    info["version"] = __version__
    try:
        reply = await asyncio.wait_for(control_conn.call(Method.REGISTER_NODE, info), timeout)
    except TimeoutError:
        raise StartError(f"the shoal head at {address} did not answer this node's "
                        f"registration within {timeout:g} s") from None
    except RemoteError as exc:
        raise StartError(f"the shoal head at {address} refused this node: {exc.message}"
                        ) from None
    except ConnectionError as exc:
        raise StartError(f"the shoal head at {address} closed the connection while this "
                        f"node registered: {exc}") from None
    agent.heartbeat_s = float(reply.get("heartbeat_s", agent.heartbeat_s))


async def run(args: argparse.Namespace, token: str) -> None:
    loop = asyncio.get_running_loop()
    router = Router()
    node_id = args.node_id or os.urandom(14).hex()
    try:
        server = await serve(router, token, args.host, args.port,
                             server_info={"node_id": node_id, "version": __version__})
    except OSError as exc:
        raise StartError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
                         ) from None
    port = server.sockets[0].getsockname()[1]
    address = f"{args.host}:{port}"
    num_cpus = args.num_cpus if args.num_cpus is not None else float(os.cpu_count() or 1)
    resources = {"CPU": num_cpus}
    num_gpus = args.num_gpus if args.num_gpus is not None else detect_gpus()
    if num_gpus:
        resources["GPU"] = num_gpus
    resources.update(json.loads(args.resources))
    resources[f"node:{args.host}"] = 1.0
    if args.head:  # Ray's marker of the head node, e.g. for node affinity to the head
        resources[HEAD_NODE_RESOURCE] = 1.0
    store_memory = args.object_store_memory or default_object_store_memory()
    store_memory -= store_memory % ALIGNMENT  # what the allocator can hand out
    resources["object_store_memory"] = float(store_memory)
    if args.memory is not None:
        resources["memory"] = float(args.memory)
    resources.setdefault("memory", float(max(0, _total_memory() * 0.7 - store_memory)))

    if args.head:
        from shoal.control.control_store import ControlStore
        from shoal.rpc.loopback import LoopbackConnection

        control_router = router
        control = ControlStore(control_router, node_timeout_s=args.node_timeout_s)
        control.start()
        agent_side_router = Router()
        # agent_conn: held by the agent, delivers to the control store
        agent_conn, control_conn = LoopbackConnection.pair(
            agent_side_router, f"node {node_id[:8]}", control_router, "control store"
        )
        control_address = address
        control_conn_for_agent = agent_conn
    else:
        if not args.address:
            raise SystemExit("--address is required unless --head")
        agent_side_router = router
        control_conn_for_agent = await join_head(
            router, token, args.address, f"node {node_id[:8]}", args.join_timeout_s)
        control_address = args.address
        control = None

    worker_env = {
        "SHOAL_TOKEN": token,
        "SHOAL_CONTROL_ADDRESS": control_address,
        "SHOAL_SESSION": args.session,
        "SHOAL_NODE_HOST": args.host,
    }
    if getattr(args, "preload_python_modules", ""):
        worker_env["SHOAL_PRELOAD_PYTHON_MODULES"] = args.preload_python_modules
    config = NodeConfig(
        node_id=node_id,
        session=args.session,
        address=address,
        resources=resources,
        object_store_memory=store_memory,
        prestart_workers=int(args.prestart if args.prestart is not None else max(1, num_cpus)),
        worker_env=worker_env,
        token=token,
        spill_dirs=args.object_spilling_directory or [default_spill_root(args.session)],
        spill_high_water=args.object_spilling_threshold,
        min_spill_bytes=args.min_spilling_size,
        gpu_ids=gpu_ids(num_gpus),
        log_dir=args.log_dir or "",
    )
    # handlers for what the control store pushes to the agent
    try:
        agent = NodeAgent(config, router, control_conn_for_agent)
    except ValueError as exc:
        raise StartError(str(exc)) from None

    def on_pubsub(conn, body):
        channel, message = body
        if channel == Channel.JOB_FINISHED:
            agent.kill_job_workers(message)
        elif channel == Channel.OWNER_DIED:
            agent.owner_watch.owner_died(message)
        elif channel == Channel.NODE:
            if not message.get("alive"):
                log.info("node %s died: %s", message.get("node_id"), message.get("cause"))
            agent.on_node_event(message)

    agent_side_router.add(Method.PUBSUB_MESSAGE, on_pubsub)
    if args.head:
        # The in-process agent must also serve what the control store calls on it.
        for method, handler in router.handlers.items():
            if method not in agent_side_router.handlers:
                agent_side_router.handlers[method] = handler
    try:
        await agent.listen_data(args.host)
        await register(control_conn_for_agent, agent, control_address, args.join_timeout_s)
    except StartError:
        agent.store.close()
        raise
    await control_conn_for_agent.call(Method.SUBSCRIBE, [Channel.JOB_FINISHED, Channel.NODE,
                                                         Channel.OWNER_DIED])
    await agent.start()

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.lifeline:
        threading.Thread(target=_watch_lifeline, args=(loop, stop), daemon=True,
                         name="lifeline").start()
    if not args.head:
        def control_lost(_) -> None:
            log.warning("lost the connection to the control store at %s (the head is gone, "
                        "or declared this node dead); stopping", control_address)
            stop.set()

        control_conn_for_agent.closed.add_done_callback(control_lost)
    print(READY_PREFIX + json.dumps({
        "address": address,
        "control_address": control_address,
        "node_id": node_id,
        "store_path": agent.store.path,
        "spill_dirs": agent.store.dirs.dirs,
        "pid": os.getpid(),
        "version": __version__,
    }), flush=True)
    await stop.wait()
    log.info("node %s shutting down", node_id)
    await agent.shutdown()
    log.info("node %s stopped its workers", node_id)
    server.close()
    del control


def exit_now() -> None:
    logging.shutdown()
    sys.stdout.flush()
    os._exit(0)


def _watch_lifeline(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Blocking reads of stdin on a thread: EOF means the driver is gone.
    (A thread, not the event loop: it must work whatever the loop is doing.)"""
    while True:
        try:
            if not os.read(0, 4096):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    log.info("lifeline closed: the driver that started this cluster is gone")
    loop.call_soon_threadsafe(stop.set)
