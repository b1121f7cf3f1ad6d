"""``shoal start | stop | status | memory``: what the commands do (``shoal/cli.py`` parses).

``start --head`` and ``start --address`` leave a node process running in the
background (its own session; stdin from /dev/null; logs in the session
directory) and record it under ``started/`` so that ``stop`` finds it.  Each
command returns the process exit code and prints what it did; errors are one
line, ``shoal: error: ...``.
"""

from __future__ import annotations

import os
import secrets
import sys
from typing import Any

import psutil

from shoal.launch import control_client, resource_args, sessions
from shoal.launch.node_process import NodeProcess, NodeSpec, NodeStartError, start_node
from shoal.launch.state_client import ClusterNotFound, resolve_cluster
from shoal.launch.status import format_status
from shoal.rpc.messages import Method
from shoal.rpc.protocol import VersionMismatchError

DEFAULT_PORT = 6380


def fail(message: str) -> int:
    print(f"shoal: error: {message}", file=sys.stderr, flush=True)
    return 1


def _spec(args: Any, **fields: Any) -> NodeSpec:
    """The node to start; ValueError/TypeError naming the flag that is wrong."""
    resources = resource_args.resources_json(args.resources) if args.resources else None
    checked = resource_args.node_args(
        resource_args.flag_name, num_cpus=args.num_cpus, num_gpus=args.num_gpus,
        memory=args.memory, resources=resources, object_store_memory=args.object_store_memory,
        **fields)
    return NodeSpec(host=args.node_ip_address,
                    object_spilling_directory=args.object_spilling_directory, **checked)


def start_head(args: Any) -> int:
    running = sessions.live_cluster(sessions.default_cluster())
    if running is not None:
        return fail(f"a shoal head started by 'shoal start' is already running on this machine "
                    f"at {running['address']} (pid {running['pid']}); run 'shoal stop' first")
    token = args.token or os.environ.get("SHOAL_TOKEN") or secrets.token_hex(16)
    try:
        spec = _spec(args, port=args.port, node_timeout_s=args.node_timeout_s)
        spec.head = True
    except (TypeError, ValueError) as exc:
        return fail(str(exc))
    launched = _launch(spec, token, "the head did not start")
    if isinstance(launched, int):
        return launched
    node, session, log_dir = launched
    dashboard, dashboard_proc = _start_dashboard(args, node.address, token, log_dir)
    sessions.remember_cluster({"address": node.address, "token": token, "pid": node.pid,
                               "create_time": node.create_time, "session": session,
                               "dashboard_url": dashboard, **dashboard_proc}, default=True)
    address = node.address
    shown = f"Dashboard: {dashboard}\n" if dashboard else ""
    print(f"Started a shoal head at {address} (node {node.node_id[:12]}, pid {node.pid}).\n"
          f"Logs: {log_dir}\n{shown}\n"
          f"To add a node to this cluster, run on that machine:\n"
          f"    shoal start --address {address} --token {token}\n\n"
          f"To connect a driver:\n"
          f"    on this machine:  shoal.init(address=\"auto\")\n"
          f"    elsewhere:        SHOAL_TOKEN={token} python -c "
          f"'import shoal; shoal.init(address=\"{address}\")'\n"
          f"    (a driver needs a node on its own machine)\n\n"
          f"Cluster status: shoal status    Stop: shoal stop", flush=True)
    return 0


def _start_dashboard(args: Any, address: str, token: str,
                     log_dir: str) -> tuple[str | None, dict]:
    """The dashboard's URL (with the token in its fragment) and its process for
    ``shoal stop`` (``dashboard_pid``, ``dashboard_create_time``); (None, {}) if it
    is off or could not start (the head runs on; the reason is printed)."""
    if not getattr(args, "include_dashboard", True):
        return None, {}
    from shoal.dashboard.launcher import DashboardPortError, start_detached

    try:
        url, pid = start_detached(args.dashboard_host, args.dashboard_port, address, token,
                                  [log_dir], os.path.join(log_dir, "dashboard.log"))
    except DashboardPortError as exc:
        print(f"shoal: warning: no dashboard: {exc}", file=sys.stderr, flush=True)
        return None, {}
    try:
        create_time = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        create_time = None
    return url, {"dashboard_pid": pid, "dashboard_create_time": create_time}


def _stop_dashboard(record: dict | None, timeout: float) -> None:
    """Stop the dashboard ``shoal start --head`` started (it would also exit by itself
    once the head's connection closes; this makes ``shoal stop`` leave nothing)."""
    pid = (record or {}).get("dashboard_pid")
    if not pid or not sessions.process_matches(pid, record.get("dashboard_create_time")):
        return
    try:
        proc = psutil.Process(pid)
        proc.terminate()
        proc.wait(timeout)
    except psutil.TimeoutExpired:
        proc.kill()
    except psutil.NoSuchProcess:
        pass


def start_node_joining(args: Any) -> int:
    address = args.address
    token = args.token or os.environ.get("SHOAL_TOKEN") or sessions.known_token(address)
    if not token:
        return fail(f"no cluster token for {address}: pass --token (printed by "
                    "'shoal start --head') or set SHOAL_TOKEN")
    try:
        spec = _spec(args)
        spec.address = address
    except (TypeError, ValueError) as exc:
        return fail(str(exc))
    launched = _launch(spec, token, f"this node did not join the cluster at {address}")
    if isinstance(launched, int):
        return launched
    node, _session, log_dir = launched
    print(f"Started a shoal node at {node.address} (node {node.node_id[:12]}, pid "
          f"{node.pid}); it joined the cluster at {address}.\nLogs: {log_dir}\n"
          f"Stop it with: shoal stop", flush=True)
    return 0


def _launch(spec: Any, token: str, failure: str) -> tuple[NodeProcess, str, str] | int:
    """Start a detached node process in a new session and remember it for
    ``shoal stop``; returns (node, session, log dir), or the exit code of a failure."""
    session, log_dir = sessions.new_session()
    try:
        node = start_node(spec, token, session, log_dir, lifeline=False)
    except NodeStartError as exc:
        return fail(f"{failure}: {exc}")
    _remember(node, session)
    return node, session, log_dir


def _remember(node: NodeProcess, session: str) -> None:
    record = node.record()
    record["session"] = session
    sessions.record_started(record)


def stop(force: bool = False, timeout: float = 10.0) -> int:
    """Stop every process ``shoal start`` started on this machine, nodes first."""
    records = sorted(sessions.started_records(), key=lambda r: bool(r.get("head")))
    if not records:
        print("No shoal processes started by 'shoal start' are running on this machine.")
        return 0
    nodes = [NodeProcess.from_record(r) for r in records]
    running = {node.pid: node.processes() for node in nodes}
    for node in nodes:
        if not force:
            node.terminate()  # all at once: they stop in parallel
    stopped = 0
    for node in nodes:
        role = "head" if node.head else "node"
        what = f"{role} {node.node_id[:12]} at {node.address} (pid {node.pid})"
        if not running[node.pid]:
            node.kill([])  # only unlinks an arena it may have left behind
            print(f"{what} was not running any more; removed its record")
        elif force:
            node.kill(running[node.pid])
            stopped += 1
            print(f"Killed {what}")
        else:
            graceful = node.stop(timeout, running[node.pid])
            stopped += 1
            print(f"Stopped {what}" + ("" if graceful else f": killed after {timeout:g} s"))
        sessions.forget_started(node.pid)
        if node.head:
            _stop_dashboard(sessions.forget_cluster(node.address), timeout)
    print(f"Stopped {stopped} shoal process(es) and their workers.", flush=True)
    return 0


def status(address: str | None, token: str | None) -> int:
    try:
        address, token = resolve_cluster(address, token)
    except (ClusterNotFound, ValueError) as exc:
        return fail(str(exc))
    try:
        reply = control_client.call(address, token, Method.CLUSTER_STATUS)
    except (ConnectionError, VersionMismatchError, TimeoutError) as exc:
        return fail(str(exc) or type(exc).__name__)
    print(format_status(address, reply), flush=True)
    return 0


def memory(args: Any) -> int:
    """``shoal memory``: the state API's objects, formatted like ``ray memory``."""
    from shoal.launch.state_client import fetch_state, resolve_cluster
    from shoal.util.memory import format_memory_summary

    try:
        address, token = resolve_cluster(args.address, args.token)
        reply = fetch_state(["objects"], address, token, timeout=args.timeout)
    except (ConnectionError, VersionMismatchError, TimeoutError) as exc:
        return fail(str(exc) or type(exc).__name__)
    print(format_memory_summary(reply, args.group_by, args.sort_by, args.units,
                                args.stats_only, args.num_entries), flush=True)
    return 0
