"""Back-pressure of a streaming generator, on the executing side.

With ``_generator_backpressure_num_objects`` set, each yielded item goes to the
owner as a request instead of a notification; the owner holds its reply while too
many yielded items are untaken by ``next()`` (``GeneratorState.hold_reply``), and
the generator's thread waits for it before running on.  A lost connection (the
owner died) ends the wait: the generator runs on and its items go nowhere.
"""

from __future__ import annotations

import threading

from shoal.rpc.messages import Method

# how often a paused generator's thread wakes, so that a cancel's interrupt lands
WAKE_S = 0.1


def send_item_and_wait(conn, body: list) -> None:
    """Send one GENERATOR_ITEM as a request and block until the owner answers."""
    answered = threading.Event()
    conn.call_from_thread(Method.GENERATOR_ITEM, body, lambda _answer: answered.set())
    while not answered.wait(WAKE_S):
        pass
