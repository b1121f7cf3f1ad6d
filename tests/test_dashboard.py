"""The dashboard against a real local cluster: the token guard over HTTP, /metrics
parsed with prometheus-client, the Chrome-trace export, and every page in headless
Chromium (Debian's package) driven by Selenium, checked against the state API.

Screenshots of each page go to ``test-artifacts/dashboard/`` (git-ignored).
"""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

import shoal
from shoal.shuffle import random_shuffle
from shoal.util.state import list_nodes, list_tasks
from tests.dashboard_browser import chromium, open_page, shot, text
from tests.utils import wait_for_condition

CLUSTER_INIT_KWARGS = {"num_cpus": 2, "dashboard_port": 0}
HTTP_TIMEOUT_S = 30


@shoal.remote
def square(x):
    return x * x


@shoal.remote
def whoami():
    return os.getpid()


@shoal.remote
def explode():
    raise ValueError("dashboard-test-failure")


@shoal.remote
class Counter:
    def __init__(self):
        self.n = 0

    def add(self, k):
        self.n += k
        return self.n


def test_init_refuses_a_dashboard_port_that_is_taken(shutdown_only):
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        with pytest.raises(ValueError, match=f"dashboard cannot listen on 127.0.0.1:{port}"):
            shoal.init(num_cpus=1, dashboard_port=port)
    ctx = shoal.init(num_cpus=1, include_dashboard=False)
    assert ctx["dashboard_url"] is None


@pytest.fixture(scope="module")
def workload(shoal_cluster):
    """Tasks, an actor, a failing task whose ref is kept (so its error is known)."""
    assert shoal.get([square.remote(i) for i in range(6)]) == [i * i for i in range(6)]
    counter = Counter.remote()
    assert shoal.get(counter.add.remote(3)) == 3
    failed = explode.remote()
    with pytest.raises(Exception, match="dashboard-test-failure"):
        shoal.get(failed, timeout=30)
    keep = shoal.put(b"x" * 200_000)
    arrays = [np.arange(i * 1000, (i + 1) * 1000, dtype=np.int64) for i in range(4)]
    shuffled = shoal.get(random_shuffle(arrays, num_partitions=3, seed=1, progress=False),
                         timeout=60)
    assert sum(len(part) for part in shuffled) == 4000
    url = shoal_cluster["dashboard_url"]
    assert url and "#token=" in url
    base, token = url.split("#token=")
    yield {"base": base, "token": token, "url": url, "counter": counter, "failed": failed,
           "keep": keep}


def _get(url: str, token: str | None = None, cookie: str | None = None):
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, headers=headers)
    return urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S)


def test_without_the_token_only_the_login_page_is_served(workload):
    base = workload["base"]
    page = _get(base).read().decode()
    assert "cluster token" in page and "app.js" not in page
    for path in ("api/tasks", "api/overview", "metrics", "api/timeline", "api/logs",
                 "static/app.js"):
        with pytest.raises(urllib.error.HTTPError) as err:
            _get(base + path)
        assert err.value.code == 401, path
    token = workload["token"]
    wrong = token[:-1] + ("1" if token[-1] == "0" else "0")  # one character off
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(base + "api/tasks", token=wrong)
    assert err.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as err:  # a wrong login sets nothing
        urllib.request.urlopen(urllib.request.Request(
            base + "login", data=b"token=nope", method="POST"), timeout=HTTP_TIMEOUT_S)
    assert err.value.code == 401


def test_metrics_parse_and_match_the_state_api(workload):
    text = _get(workload["base"] + "metrics", token=workload["token"]).read().decode()
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    finished = sum(s.value for s in samples
                   if s.name == "shoal_tasks" and s.labels == {"State": "FINISHED",
                                                               "Name": "square"})
    expected = len(list_tasks(filters=[("name", "=", "square"), ("state", "=", "FINISHED")],
                              limit=None))
    assert finished == expected == 6
    assert any(s.name == "shoal_object_store_memory_bytes" for s in samples)
    assert [s.value for s in samples if s.name == "shoal_cluster_active_nodes"] == [1]


def test_timeline_export_matches_the_task_counts(workload, tmp_path):
    path = tmp_path / "timeline.json"
    assert shoal.timeline(filename=str(path)) is None
    events = json.loads(path.read_text())
    spans = [e for e in events if e.get("ph") == "X"]
    started = [t for t in list_tasks(limit=None, detail=True) if t.start_time_ms]
    assert len([e for e in spans if e["name"] == "square"]) == 6
    assert len(spans) == len(started)
    assert all(e["dur"] >= 0 and e["ts"] > 0 for e in spans)
    failed = [e for e in spans if e["name"] == "explode"]
    assert failed and failed[0]["args"]["state"] == "FAILED"


def test_failed_task_record_carries_the_traceback(workload):
    [task] = list_tasks(filters=[("name", "=", "explode")], detail=True)
    assert task.state == "FAILED" and task.error_type == "TASK_EXECUTION_EXCEPTION"
    assert "Traceback" in task.error_message and "dashboard-test-failure" in task.error_message


def test_list_workers_and_jobs(workload, shoal_cluster):
    from shoal.util.state import list_jobs, list_workers, summarize_tasks

    pid = shoal.get(whoami.remote(), timeout=30)  # a worker alive now (idle ones may exit)
    workers = list_workers(limit=None)
    assert pid in {w.pid for w in workers if w.is_alive}
    assert all(w.worker_type == "WORKER" for w in workers)
    assert all(w.exit_type is None for w in workers if w.is_alive)
    [job] = list_jobs()
    assert job.job_id == shoal_cluster["job_id"] and job.status == "RUNNING"
    assert job.driver_info["pid"] == os.getpid()
    summary = summarize_tasks()
    assert summary["summary"]["square"]["state_counts"]["FINISHED"] >= 6
    assert summary["summary"]["explode"]["state_counts"] == {"FAILED": 1}


# ---- the browser -------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser(workload):
    yield from chromium()


@pytest.mark.timeout(120)
def test_every_page_in_a_browser(workload, browser):
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(workload["url"])  # the link init() returned, token in the fragment
    wait_for_condition(lambda: text(driver, "#nodes-alive") != "", timeout=60)
    assert "token" not in driver.current_url  # moved off the address bar
    assert "shoal_dashboard_token" not in driver.execute_script("return document.cookie")
    alive = [n for n in list_nodes() if n.state == "ALIVE"]
    assert text(driver, "#nodes-alive") == str(len(alive))
    shot(driver, "overview")

    open_page(driver, "tasks")
    expected = len(list_tasks(filters=[("state", "=", "FINISHED")], limit=None))
    wait_for_condition(lambda: text(driver, "#task-count-FINISHED") == str(expected),
                       timeout=20)
    assert text(driver, "#task-count-FAILED") == "1"
    shot(driver, "tasks")
    wait_for_condition(lambda: driver.execute_script(  # find and click in one step
        "const row = [...document.querySelectorAll('#tasks-table tr[data-task-id]')]"
        ".find((r) => r.children[1].textContent === 'explode');"
        "if (row) row.click(); return !!row;"), timeout=20)
    wait_for_condition(lambda: "dashboard-test-failure" in text(driver, "#task-error"),
                       timeout=20)
    assert "Traceback" in text(driver, "#task-error")
    shot(driver, "task-detail")

    # live update: new tasks appear without a reload
    before = int(text(driver, "#task-total"))
    shoal.get([square.remote(i) for i in range(4)])
    wait_for_condition(lambda: text(driver, "#task-total").isdigit()
                       and int(text(driver, "#task-total")) >= before + 4, timeout=20)

    open_page(driver, "actors")
    actor_id = workload["counter"]._actor_id if hasattr(workload["counter"], "_actor_id") \
        else None
    wait_for_condition(lambda: "Counter" in text(driver, "#actors-table"), timeout=20)
    assert "ALIVE" in text(driver, "#actors-table")
    if actor_id:
        assert driver.find_elements(By.CSS_SELECTOR, f"tr[data-actor-id='{actor_id}']")
    shot(driver, "actors")

    open_page(driver, "objects")
    keep_id = workload["keep"].hex()
    wait_for_condition(lambda: driver.find_elements(
        By.CSS_SELECTOR, f"#objects-table tr[data-object-id='{keep_id}']"), timeout=20)
    shot(driver, "objects")

    open_page(driver, "logs")
    wait_for_condition(lambda: driver.find_elements(By.CSS_SELECTOR, "#log-list tr[data-log]"),
                       timeout=20)
    shot(driver, "logs")

    open_page(driver, "timeline")
    wait_for_condition(lambda: text(driver, "#stream-count").isdigit()
                       and int(text(driver, "#stream-count")) >= 10, timeout=20)
    assert driver.find_elements(By.CSS_SELECTOR, "#stream .bar.FAILED")
    shot(driver, "timeline")

    open_page(driver, "shuffle")
    maps = len(list_tasks(filters=[("name", "=", "map_task")], limit=None))
    reduces = len(list_tasks(filters=[("name", "=", "reduce_task")], limit=None))
    assert maps >= 4 and reduces >= 3
    wait_for_condition(lambda: text(driver, "tr[data-stage='map'] .total") == str(maps),
                       timeout=20)
    assert text(driver, "tr[data-stage='reduce'] .total") == str(reduces)
    shot(driver, "shuffle")


def test_login_form_in_a_browser(workload, browser):
    from selenium.webdriver.common.by import By

    driver = browser
    driver.delete_all_cookies()
    driver.get(workload["base"])
    wait_for_condition(lambda: driver.find_elements(By.ID, "login-form"), timeout=20)
    # logged out, the browser gets the login page and 401s, nothing else
    assert driver.execute_script(
        "return fetch('/api/tasks', {credentials: 'same-origin'}).then((r) => r.status)") == 401
    assert not driver.find_elements(By.ID, "nav")
    driver.find_element(By.ID, "token").send_keys(workload["token"])
    shot(driver, "login")
    driver.find_element(By.ID, "login-button").click()
    wait_for_condition(lambda: text(driver, "#nodes-alive") != "", timeout=30)
