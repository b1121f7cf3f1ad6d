"""Test helpers with Ray's names, written on shoal's public API."""
import asyncio
import dataclasses
import os
import subprocess
import sys
import time

import shoal


def wait_for_condition(condition_predictor, timeout=10, retry_interval_ms=100,
                       raise_exceptions=False, **kwargs):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if condition_predictor(**kwargs):
                return
        except Exception as exc:
            if raise_exceptions:
                raise
            last = exc
        time.sleep(retry_interval_ms / 1000)
    raise RuntimeError(f"The condition wasn't met before the timeout expired. last: {last!r}")


async def async_wait_for_condition(condition_predictor, timeout=10, retry_interval_ms=100,
                                   **kwargs):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = condition_predictor(**kwargs)
            if asyncio.iscoroutine(r):
                r = await r
            if r:
                return
        except Exception:
            pass
        await asyncio.sleep(retry_interval_ms / 1000)
    raise RuntimeError("The condition wasn't met before the timeout expired.")


class Signal:
    """The body of Ray's SignalActor (remote here, and per module in
    ``tests/client_test_utils.create_remote_signal_actor``)."""

    def __init__(self):
        self.ready_event = asyncio.Event()
        self.num_waiters = 0

    def send(self, clear=False):
        self.ready_event.set()
        if clear:
            self.ready_event.clear()

    async def wait(self, should_wait=True):
        if should_wait:
            self.num_waiters += 1
            await self.ready_event.wait()
            self.num_waiters -= 1

    async def cur_num_waiters(self):
        return self.num_waiters


SignalActor = shoal.remote(num_cpus=0)(Signal)


@shoal.remote(num_cpus=0)
class Semaphore:
    def __init__(self, value=1):
        self._sema = asyncio.Semaphore(value=value)

    async def acquire(self):
        await self._sema.acquire()

    async def release(self):
        self._sema.release()

    async def locked(self):
        return self._sema.locked()


def _driver_env(env):
    e = dict(os.environ)
    if env:
        e.update(env)
    return e


def run_string_as_driver(driver_script, env=None, encode="utf-8"):
    proc = subprocess.run([sys.executable, "-"], input=driver_script.encode(encode),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          env=_driver_env(env), timeout=120)
    out = proc.stdout.decode(encode)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, proc.args, out, None)
    return out


def run_string_as_driver_nonblocking(driver_script, env=None):
    proc = subprocess.Popen([sys.executable, "-"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=_driver_env(env))
    proc.stdin.write(driver_script.encode("utf-8"))
    proc.stdin.close()
    return proc


def wait_for_pid_to_exit(pid, timeout=20):
    import psutil
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid):
            return
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.1)
    raise TimeoutError(f"Timed out while waiting for process {pid} to exit.")


def kill_actor_and_wait_for_failure(actor, timeout=10, retry_interval_ms=100):
    shoal.kill(actor)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            shoal.get(actor.__ray_ready__.remote(), timeout=timeout)
        except Exception:
            return
        time.sleep(retry_interval_ms / 1000)
    raise RuntimeError("actor did not die")


@dataclasses.dataclass
class PrometheusTimeseries:
    """Ray's holder of scraped samples: the latest sample per (metric, labels)."""

    components_dict: dict = dataclasses.field(default_factory=dict)
    metric_descriptors: dict = dataclasses.field(default_factory=dict)
    metric_samples: dict = dataclasses.field(default_factory=dict)

    def flush(self):
        self.components_dict.clear()
        self.metric_descriptors.clear()
        self.metric_samples.clear()


def scrape_shoal_metrics(dashboard_url):
    """shoal's /metrics (the dashboard of ``init``'s ``dashboard_url``, with its token),
    with shoal's metric names in Ray's spelling (``shoal_actors`` -> ``ray_actors``)."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    base, _, token = dashboard_url.partition("#token=")
    req = urllib.request.Request(base.rstrip("/") + "/metrics",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read().decode()
    out = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("shoal_"):
                sample = sample._replace(name="ray_" + sample.name[len("shoal_"):])
            out.append((family, sample))
    return out


def fetch_shoal_timeseries(dashboard_url, result):
    for family, sample in scrape_shoal_metrics(dashboard_url):
        result.metric_descriptors[sample.name] = family
        key = frozenset(list(sample.labels.items()) + [("_metric_name_", sample.name)])
        result.metric_samples[key] = sample
    return result


def client_test_enabled():
    return False


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    from ray import _Missing
    return _Missing(f"ray._common.test_utils.{name}")
