"""The dashboard over a two-node cluster: /metrics counts the object bytes a
pull moves (per node, sent and received) and the lease latency, parsed with
prometheus-client's parser; the logs of a worker on the other node are listed
and read by offset over HTTP; and the logs page streams that file in headless
Chromium, appending new lines without a reload."""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request
import uuid

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

import shoal
from shoal.dashboard.launcher import LazyDashboard, bind
from tests.clusters import connected_cluster
from tests.dashboard_browser import chromium, open_page, shot, text
from tests.utils import wait_for_condition

MiB = 1 << 20
HTTP_TIMEOUT_S = 30


@shoal.remote
class Printer:
    def say(self, line: str) -> int:
        print(line)
        return os.getpid()


@shoal.remote
def make_array(n: int) -> np.ndarray:
    return np.ones(n, dtype=np.uint8)


@pytest.fixture(scope="module")
def cluster():
    with connected_cluster(
            {"num_cpus": 1, "resources": {"head": 1}, "object_store_memory": 128 * MiB},
            n1={"num_cpus": 1, "resources": {"n1": 1}, "object_store_memory": 128 * MiB}) as c:
        dashboard = LazyDashboard(bind("127.0.0.1", 0), c.address, c.token, [c.log_dir])
        try:
            dashboard.start_now()
            base = dashboard.url.split("#token=")[0]
            c.dashboard = {"url": dashboard.url, "base": base, "token": c.token}
            yield c
        finally:
            dashboard.stop()


@pytest.fixture(scope="module")
def printer(cluster):
    """An actor on n1 (it holds n1's one "n1" unit: one for the module)."""
    return Printer.options(resources={"n1": 1}).remote()


def _get(cluster, path: str) -> bytes:
    request = urllib.request.Request(cluster.dashboard["base"] + path, headers={
        "Authorization": f"Bearer {cluster.dashboard['token']}"})
    return urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S).read()


def _samples(cluster) -> list:
    text_ = _get(cluster, "metrics").decode()
    return [s for family in text_string_to_metric_families(text_) for s in family.samples]


def _transfer(samples: list, kind: str, address: str) -> float:
    return sum(s.value for s in samples if s.name == "shoal_object_manager_bytes_total"
               and s.labels == {"Type": kind, "NodeAddress": address})


def test_metrics_count_the_bytes_a_pull_moves_and_the_lease_latency(cluster):
    head, n1 = cluster.head_node.address, cluster.n1.address
    before = _samples(cluster)
    ref = make_array.options(resources={"n1": 1}).remote(24 * MiB)
    assert int(shoal.get(ref, timeout=60).sum()) == 24 * MiB  # pulled to the head

    def moved():
        now = _samples(cluster)
        return (_transfer(now, "Sent", n1) - _transfer(before, "Sent", n1) >= 24 * MiB
                and _transfer(now, "Received", head) - _transfer(before, "Received", head)
                >= 24 * MiB and now)

    samples = wait_for_condition(moved, timeout=30)
    assert _transfer(samples, "Received", n1) == _transfer(before, "Received", n1)
    # the task's lease was granted at n1 (spilled there by the head): n1 counted it
    counts = {s.labels["NodeAddress"]: s.value for s in samples
              if s.name == "shoal_scheduler_lease_request_latency_seconds_count"}
    assert counts[n1] >= 1
    buckets = [s for s in samples
               if s.name == "shoal_scheduler_lease_request_latency_seconds_bucket"
               and s.labels["NodeAddress"] == n1]
    assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == counts[n1]
    assert [b.value for b in buckets] == sorted(b.value for b in buckets)  # cumulative


def _log_rows(cluster, pid: int) -> list[dict]:
    return [r for r in json.loads(_get(cluster, "api/logs"))["logs"] if r["pid"] == pid]


def _read(cluster, row: dict, offset: int) -> dict:
    query = urllib.parse.urlencode({"node": row["node_id"], "name": row["name"],
                                    "offset": offset})
    return json.loads(_get(cluster, f"api/log?{query}"))


def test_a_remote_workers_log_is_listed_and_read_by_offset(cluster, printer):
    first, second = f"first-{uuid.uuid4().hex}", f"second-{uuid.uuid4().hex}"
    pid = shoal.get(printer.say.remote(first), timeout=60)
    rows = wait_for_condition(lambda: _log_rows(cluster, pid), timeout=30)
    [out] = [r for r in rows if r["stream"] == "stdout"]
    assert out["node_id"] == cluster.n1.node_id and out["actor"] == "Printer"
    assert out["name"] == f"worker-{out['worker_id']}-{pid}.out"
    tail = wait_for_condition(lambda: (c := _read(cluster, out, -1)) and first in c["data"]
                              and c, timeout=30)
    shoal.get(printer.say.remote(second), timeout=60)
    more = wait_for_condition(lambda: (c := _read(cluster, out, tail["next"]))
                              and c["data"] and c, timeout=30)
    assert more["data"] == second + "\n" and more["offset"] == tail["next"]
    with pytest.raises(urllib.error.HTTPError) as err:
        _read(cluster, {**out, "name": "../" + out["name"]}, 0)
    assert err.value.code == 404


@pytest.fixture(scope="module")
def browser(cluster):
    yield from chromium()


@pytest.mark.timeout(120)
def test_logs_page_streams_a_remote_workers_file_without_reloading(cluster, printer, browser):
    first = f"page-first-{uuid.uuid4().hex}"
    pid = shoal.get(printer.say.remote(first), timeout=60)
    [out] = wait_for_condition(
        lambda: [r for r in _log_rows(cluster, pid) if r["stream"] == "stdout"], timeout=30)
    driver = browser
    driver.get(cluster.dashboard["url"])
    open_page(driver, "logs")
    row = f"#log-list tr[data-log='{out['name']}'][data-node='{out['node_id']}']"
    wait_for_condition(lambda: driver.execute_script(
        "const r = document.querySelector(arguments[0]); if (r) r.click(); return !!r;",
        row), timeout=30)
    wait_for_condition(lambda: first in text(driver, "#log-text"), timeout=30)
    driver.execute_script("window.shoalNoReload = 'still here'")
    later = [f"page-later-{i}-{uuid.uuid4().hex}" for i in range(3)]
    for line in later:
        shoal.get(printer.say.remote(line), timeout=60)
    wait_for_condition(lambda: all(line in text(driver, "#log-text") for line in later),
                       timeout=30)
    assert driver.execute_script("return window.shoalNoReload") == "still here"
    shown = text(driver, "#log-text").splitlines()
    assert shown[-3:] == later and shown.count(first) == 1  # appended once, in order
    assert "Printer" in text(driver, row)
    shot(driver, "logs-streaming")
