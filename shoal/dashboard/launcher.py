"""Starting the dashboard without slowing the cluster's start.

``init()`` binds the dashboard's listening socket itself (microseconds), so it
can return ``dashboard_url`` at once, and starts the server process only when
the first connection arrives (:class:`LazyDashboard`): a cluster nobody looks
at never pays for the server's imports (~0.3 s of CPU, ~40 MB).  A browser's
first request waits in the socket's backlog while the process starts; then the
process owns the socket and this process closes its copy.

``shoal start --head`` has no process that lives on to wait like that, so it
starts the server at once, detached (:func:`start_detached`).  Either way the
server exits when its connection to the control store closes, i.e. with the
cluster.
"""

from __future__ import annotations

import os
import selectors
import socket
import subprocess
import threading

from shoal.core.import_path import own_module_command
from shoal.dashboard import DEFAULT_HOST, DEFAULT_PORT

PORT_ATTEMPTS = 20  # the default port is busy: try the next few (several clusters here)
STOP_TIMEOUT_S = 5.0


class DashboardPortError(ValueError):
    """The port asked for is taken."""


def dashboard_url(host: str, port: int, token: str) -> str:
    """The link to open: the token rides in the fragment, which browsers never send
    to the server; the page moves it into a cookie and off the address bar."""
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
    return f"http://{shown}:{port}/#token={token}"


def bind(host: str | None, port: int | None) -> socket.socket:
    """A listening socket on ``host:port``.  An explicit port that is taken is an
    error naming it; the default one falls back to the next free ports, then any."""
    host = host or DEFAULT_HOST
    if port is not None:
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port < 65536:
            raise DashboardPortError(f"dashboard_port must be a port number, got {port!r}")
        try:
            return socket.create_server((host, port))
        except OSError as exc:
            raise DashboardPortError(f"the dashboard cannot listen on {host}:{port}: "
                                     f"{exc.strerror or exc}") from None
    for candidate in [*range(DEFAULT_PORT, DEFAULT_PORT + PORT_ATTEMPTS), 0]:
        try:
            return socket.create_server((host, candidate))
        except OSError:
            continue
    raise DashboardPortError(f"the dashboard found no free port on {host}")


def _command(sock: socket.socket, control_address: str, log_dirs: list[str]) -> list[str]:
    cmd = own_module_command("shoal.dashboard", "--control-address", control_address,
                             "--fd", str(sock.fileno()))
    for folder in log_dirs:
        cmd += ["--log-dir", folder]
    return cmd


def _env(token: str) -> dict:
    env = dict(os.environ)
    env["SHOAL_TOKEN"] = token
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


class LazyDashboard:
    """A bound socket, and a thread that starts the server on the first connection."""

    def __init__(self, sock: socket.socket, control_address: str, token: str,
                 log_dirs: list[str], stderr_path: str | None = None) -> None:
        self.sock = sock
        self.host, self.port = sock.getsockname()[:2]
        self.url = dashboard_url(self.host, self.port, token)
        self._args = (control_address, token, list(log_dirs), stderr_path)
        self.proc: subprocess.Popen | None = None
        self._wake_r, self._wake_w = os.pipe()
        self._lock = threading.Lock()
        self._stopped = False
        self._thread = threading.Thread(target=self._wait_for_visitor, daemon=True,
                                        name="shoal-dashboard-lazy")
        self._thread.start()

    def _wait_for_visitor(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self.sock, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            ready = {key.fileobj for key, _ in sel.select()}
        if self.sock in ready:
            self.start_now()

    def start_now(self) -> None:
        """Start the server process (idempotent); the socket passes to it."""
        with self._lock:
            if self.proc is not None or self._stopped:
                return
            control_address, token, log_dirs, stderr_path = self._args
            stderr = open(stderr_path, "ab") if stderr_path else subprocess.DEVNULL  # noqa: SIM115
            try:
                self.proc = subprocess.Popen(
                    _command(self.sock, control_address, log_dirs), stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=stderr, env=_env(token),
                    pass_fds=(self.sock.fileno(),), start_new_session=True)
            finally:
                if stderr_path:
                    stderr.close()
            self.sock.close()  # the server's now

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            os.write(self._wake_w, b"x")
            proc = self.proc
        self._thread.join(STOP_TIMEOUT_S)
        if proc is None:
            self.sock.close()
        else:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_TIMEOUT_S)
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)


def start_detached(host: str | None, port: int | None, control_address: str, token: str,
                   log_dirs: list[str], log_path: str) -> tuple[str, int]:
    """Start the server now, in its own session (``shoal start --head``); returns
    (url, pid).  It stops when the head does."""
    sock = bind(host, port)
    host, port = sock.getsockname()[:2]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(_command(sock, control_address, log_dirs),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                env=_env(token), pass_fds=(sock.fileno(),),
                                start_new_session=True)
    sock.close()
    return dashboard_url(host, port, token), proc.pid
