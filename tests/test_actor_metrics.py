"""/metrics exports Ray's ``ray_actors`` gauge as ``shoal_actors{State, Name}``: the
control store's states per class, ALIVE split again into ALIVE_IDLE and
ALIVE_RUNNING_TASKS by the actors' own processes, and DEAD still counted after the
dead records are dropped (SHOAL_MAX_DEAD_ACTORS bounds them)."""

from __future__ import annotations

import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

import shoal
from shoal.util.state import list_actors
from tests.utils import wait_for_condition


def _actor_gauge(info) -> dict:
    base, token = info["dashboard_url"].split("#token=")
    req = urllib.request.Request(base + "metrics",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read().decode()
    return {(s.labels["State"], s.labels["Name"]): s.value
            for f in text_string_to_metric_families(text) if f.name == "shoal_actors"
            for s in f.samples if s.value}


@shoal.remote(num_cpus=1)
class Busy:
    def ping(self):
        return 1

    def block(self, seconds):
        time.sleep(seconds)


@shoal.remote(num_cpus=0)
class Short:
    def ping(self):
        return 1


def test_actor_states_running_idle_pending_and_dead(shutdown_only):
    info = shoal.init(num_cpus=2)
    a, b = Busy.remote(), Busy.remote()
    shoal.get([a.ping.remote(), b.ping.remote()], timeout=30)
    pending = Busy.remote()  # no CPU left
    a.block.remote(60)
    expected = {("ALIVE", "Busy"): 2, ("ALIVE_RUNNING_TASKS", "Busy"): 1,
                ("ALIVE_IDLE", "Busy"): 1, ("PENDING_CREATION", "Busy"): 1}
    wait_for_condition(lambda: _actor_gauge(info) == expected, timeout=30)
    shoal.kill(b)  # its CPU goes to the pending one
    expected = {("ALIVE", "Busy"): 2, ("ALIVE_RUNNING_TASKS", "Busy"): 1,
                ("ALIVE_IDLE", "Busy"): 1, ("DEAD", "Busy"): 1}
    wait_for_condition(lambda: _actor_gauge(info) == expected, timeout=30)
    del pending


def test_dead_actors_stay_counted_after_their_records_are_dropped(shutdown_only,
                                                                    monkeypatch):
    monkeypatch.setenv("SHOAL_MAX_DEAD_ACTORS", "2")
    info = shoal.init(num_cpus=1)
    actors = [Short.remote() for _ in range(5)]
    shoal.get([x.ping.remote() for x in actors], timeout=30)
    for x in actors:
        shoal.kill(x)
    wait_for_condition(lambda: _actor_gauge(info) == {("DEAD", "Short"): 5}, timeout=30)
    assert len(list_actors()) == 2
