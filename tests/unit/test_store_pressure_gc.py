"""The rate limit of the store-pressure garbage collection (pure)."""

from shoal.node.store_pressure_gc import GcTrigger


def test_collects_past_the_mark_at_most_once_per_interval():
    trigger = GcTrigger(min_interval_s=5.0, fraction=0.7)
    assert not trigger.should_collect(69, 100, now=0.0)
    assert trigger.should_collect(70, 100, now=1.0)
    assert not trigger.should_collect(90, 100, now=5.9)  # too soon after the last
    assert trigger.should_collect(90, 100, now=6.0)
    assert not trigger.should_collect(10, 100, now=100.0)  # no pressure


def test_an_empty_store_never_collects():
    assert not GcTrigger().should_collect(0, 0, now=0.0)
