"""An actor whose constructor takes refs that are not ready waits unplaced, in Ray's
DEPENDENCIES_UNREADY state, holding no resources; once its owner has them it is
placed and created with their values.  A detached one whose owner dies first ends."""

from __future__ import annotations

import shoal
from shoal.util.state import list_actors
from tests.gate_actor import Gate
from tests.utils import wait_for_condition


@shoal.remote(num_cpus=0)
def produce(gate):
    shoal.get(gate.wait.remote(), timeout=60)
    return 42


@shoal.remote(num_cpus=1)
class Consumer:
    def __init__(self, value):
        self.value = value

    def get(self):
        return self.value


def _state_of(actor) -> str:
    rows = [a for a in list_actors() if a.actor_id == actor._actor_id.hex()]
    return rows[0].state if rows else ""


def test_an_actor_waits_for_its_arguments_unplaced_then_runs(shutdown_only):
    shoal.init(num_cpus=2, include_dashboard=False)
    gate = Gate.remote()
    consumer = Consumer.remote(produce.remote(gate))
    wait_for_condition(lambda: _state_of(consumer) == "DEPENDENCIES_UNREADY", timeout=30)
    assert shoal.available_resources().get("CPU") == 2.0  # it holds no CPU meanwhile
    gate.open.remote()
    assert shoal.get(consumer.get.remote(), timeout=60) == 42
    assert _state_of(consumer) == "ALIVE"


def test_an_actor_with_ready_arguments_is_placed_at_once(shutdown_only):
    shoal.init(num_cpus=1, include_dashboard=False)
    ref = shoal.put(7)
    consumer = Consumer.remote(ref)
    assert shoal.get(consumer.get.remote(), timeout=60) == 7


DRIVER = """
import sys
sys.path.insert(0, "{root}")
import shoal
from tests.test_actor_dependencies import Gate, Consumer, produce
shoal.init(address="{address}")
gate = Gate.options(name="gate", lifetime="detached").remote()
Consumer.options(name="waiting", lifetime="detached").remote(produce.remote(gate))
print("CREATED", flush=True)
"""


def test_a_detached_actor_whose_owner_dies_before_its_arguments_are_ready_ends(
        shutdown_only, tmp_path):
    import subprocess
    import sys

    from tests.utils import REPO_ROOT

    info = shoal.init(num_cpus=1, include_dashboard=False)
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(address=info["address"], root=REPO_ROOT))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=60, cwd=str(REPO_ROOT))
    assert "CREATED" in out.stdout, out.stderr

    def waiting_state():
        rows = [a for a in list_actors() if a.name == "waiting"]
        return rows[0].state if rows else ""

    wait_for_condition(lambda: waiting_state() == "DEAD", timeout=30)
    shoal.kill(shoal.get_actor("gate"))
