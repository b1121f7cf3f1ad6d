"""Unit tests for shoal.core.reference_table: the owner/borrower protocol."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from shoal.core.reference_table import Action, ActionKind, Reference, ReferenceTable

OWNER = "10.0.0.1:7000"
W1 = "10.0.0.2:7001"
W2 = "10.0.0.3:7002"


def oid(name: str) -> bytes:
    return name.encode().ljust(28, b"\0")


def FREE(name: str) -> Action:
    return Action(ActionKind.FREE, oid(name))


def REMOVE(name: str, count: int, owner: str = OWNER) -> Action:
    return Action(ActionKind.REMOVE_BORROWER, oid(name), owner, count)


def REGISTER(name: str, owner: str = OWNER) -> Action:
    return Action(ActionKind.REGISTER_BORROW, oid(name), owner)


def owned(table: ReferenceTable, name: str, contains=()) -> bytes:
    """An object we own with one live local ObjectRef, as after ``put``."""
    table.add_owned(oid(name), [oid(c) for c in contains])
    assert table.inc_local(oid(name), "") is False
    return oid(name)


# ---- Reference.in_scope ---------------------------------------------------------------------


def test_reference_in_scope_clauses():
    assert not Reference(owner="").in_scope()
    assert Reference(owner="", local=1).in_scope()
    assert Reference(owner="", submitted=1).in_scope()
    assert Reference(owner="", contained_in=1).in_scope()
    assert Reference(owner="", borrowers={W1: 1}).in_scope()
    assert Reference(owner="", holds=1).in_scope()
    # registrations / registering are not scope clauses
    assert not Reference(owner=OWNER, registrations=3).in_scope()
    assert Reference(owner="").owned and not Reference(owner=OWNER).owned


def test_take_actions_drains():
    table = ReferenceTable()
    x = owned(table, "x")
    table.dec_local(x)
    assert table.take_actions() == [FREE("x")]
    assert table.take_actions() == []
    assert table.actions == []


# ---- owner side: FREE only when every count is zero ------------------------------------------


def test_owned_object_freed_when_last_local_ref_dropped():
    table = ReferenceTable()
    x = owned(table, "x")
    assert table.inc_local(x, "") is False
    table.dec_local(x)
    assert table.take_actions() == []
    table.dec_local(x)
    assert table.take_actions() == [FREE("x")]
    assert x not in table.refs


def test_owned_object_kept_while_submitted():
    table = ReferenceTable()
    x = owned(table, "x")
    table.inc_submitted([x])
    table.dec_local(x)
    assert table.take_actions() == [] and x in table.refs
    table.dec_submitted([x])
    assert table.take_actions() == [FREE("x")]


def test_submitted_counts_each_use():
    table = ReferenceTable()
    x = owned(table, "x")
    table.inc_submitted([x, x])  # the same ref twice in one task's args
    table.dec_local(x)
    table.dec_submitted([x])
    assert table.take_actions() == []
    table.dec_submitted([x])
    assert table.take_actions() == [FREE("x")]


def test_owned_object_kept_while_borrowed():
    table = ReferenceTable()
    x = owned(table, "x")
    assert table.add_borrower(x, W1) is True
    assert table.add_borrower(x, W1, 2) is True  # registered on its behalf too
    assert table.add_borrower(x, W2) is True
    assert table.refs[x].borrowers == {W1: 3, W2: 1}
    table.dec_local(x)
    assert table.take_actions() == []
    table.remove_borrower(x, W1, 2)  # partial: W1 still holds one registration
    assert table.refs[x].borrowers == {W1: 1, W2: 1}
    table.remove_borrower(x, W2, 1)
    assert table.take_actions() == []
    table.remove_borrower(x, W1, 1)
    assert table.take_actions() == [FREE("x")]


def test_remove_borrower_with_excess_count_drops_borrower():
    table = ReferenceTable()
    x = owned(table, "x")
    table.add_borrower(x, W1)
    table.dec_local(x)
    table.remove_borrower(x, W1, 5)
    assert table.take_actions() == [FREE("x")]


def test_remove_unknown_borrower_or_object_is_ignored():
    table = ReferenceTable()
    x = owned(table, "x")
    table.remove_borrower(x, W1, 1)
    table.remove_borrower(oid("nope"), W1, 1)
    assert table.take_actions() == [] and x in table.refs


def test_add_borrower_refused_for_unknown_or_borrowed_object():
    table = ReferenceTable()
    assert table.add_borrower(oid("gone"), W1) is False
    assert table.inc_local(oid("b"), OWNER) is True
    assert table.add_borrower(oid("b"), W1) is False
    assert table.refs[oid("b")].borrowers == {}


def test_borrower_died_drops_that_borrower_everywhere():
    table = ReferenceTable()
    x = owned(table, "x")
    y = owned(table, "y")
    table.add_borrower(x, W1, 3)
    table.add_borrower(y, W1)
    table.add_borrower(y, W2)
    table.dec_local(x)
    table.dec_local(y)
    table.borrower_died(W1)
    assert table.take_actions() == [FREE("x")]
    assert table.refs[y].borrowers == {W2: 1}
    table.borrower_died(W1)  # idempotent
    assert table.take_actions() == []
    table.borrower_died(W2)
    assert table.take_actions() == [FREE("y")]


def test_owned_object_not_freed_until_a_decrement_happens():
    # add_owned alone does not free an object that has no count yet.
    table = ReferenceTable()
    table.add_owned(oid("x"))
    assert table.take_actions() == [] and oid("x") in table.refs
    table.release_if_unused(oid("x"))
    assert table.take_actions() == [FREE("x")]


def test_release_if_unused_keeps_in_scope_refs():
    table = ReferenceTable()
    x = owned(table, "x")
    table.release_if_unused(x)
    table.release_if_unused(oid("unknown"))
    assert table.take_actions() == [] and x in table.refs


def test_operations_on_unknown_ids_are_noops():
    table = ReferenceTable()
    table.dec_local(oid("a"))
    table.inc_submitted([oid("a")])
    table.dec_submitted([oid("a")])
    table.add_contained(oid("a"), [(oid("b"), OWNER)])
    table.registration_done(oid("a"))
    assert table.refs == {} and table.actions == []


# ---- contained refs ----------------------------------------------------------------------------


def test_add_owned_contains_keeps_inner_alive_with_container():
    table = ReferenceTable()
    inner = owned(table, "inner")
    outer = owned(table, "outer", contains=["inner"])
    assert table.refs[inner].contained_in == 1
    table.dec_local(inner)
    assert table.take_actions() == [] and inner in table.refs
    table.dec_local(outer)
    assert table.take_actions() == [FREE("outer"), FREE("inner")]
    assert table.refs == {}


def test_add_returns_counts_the_one_ref_submit_hands_out_per_return():
    table = ReferenceTable()
    a, b = oid("ret1"), oid("ret2")
    table.add_returns([a, b])
    assert (table.refs[a].local, table.refs[a].owned) == (1, True)
    table.add_returns([a])  # a row that already exists gains a count
    assert table.refs[a].local == 2
    table.dec_local_many([a, b, a])
    assert table.take_actions() == [FREE("ret2"), FREE("ret1")]
    assert table.refs == {}


def test_dec_local_many_releases_like_dec_local():
    table = ReferenceTable()
    inner = owned(table, "inner")
    outer = owned(table, "outer", contains=["inner"])
    table.inc_local(inner, "")
    table.dec_local_many([inner, outer, oid("unknown")])
    assert table.take_actions() == [FREE("outer")]  # inner: one local ref left
    table.dec_local_many([inner])
    assert table.take_actions() == [FREE("inner")]
    assert table.refs == {}


def _one_row(owner, submitted, contained_in, borrowed, holds, lineage, contains):
    table = ReferenceTable()
    table.refs[oid("inner")] = Reference("", 1, contained_in=1)
    table.refs[oid("x")] = Reference(
        owner, 1, submitted, contained_in, {W1: 1} if borrowed else {}, holds, lineage,
        contains=[oid("inner")] if contains else ())
    return table


def test_dec_local_many_fast_path_agrees_with_dec_local():
    """dec_local_many inlines the common release (an owned ref with nothing else
    to undo); every row state (all 128) must end as dec_local leaves it."""
    for state in itertools.product(["", OWNER], *[(False, True)] * 6):
        one, many = _one_row(*state), _one_row(*state)
        one.dec_local(oid("x"))
        many.dec_local_many([oid("x")])
        assert many.take_actions() == one.take_actions(), state
        assert many.refs == one.refs, state


def test_add_owned_ignores_unknown_inner_refs():
    table = ReferenceTable()
    outer = owned(table, "outer", contains=["ghost"])
    assert not table.refs[outer].contains
    table.dec_local(outer)
    assert table.take_actions() == [FREE("outer")]


def test_inner_with_own_count_survives_container():
    table = ReferenceTable()
    inner = owned(table, "inner")
    outer = owned(table, "outer", contains=["inner"])
    table.dec_local(outer)
    assert table.take_actions() == [FREE("outer")]
    assert table.refs[inner].contained_in == 0
    table.dec_local(inner)
    assert table.take_actions() == [FREE("inner")]


def test_add_contained_registers_borrowed_inner_and_releases_with_container():
    table = ReferenceTable()
    ret = owned(table, "ret")  # a task's return value we own
    table.add_contained(ret, [(oid("b1"), OWNER), (oid("b2"), W2)])
    b1 = table.refs[oid("b1")]
    assert (b1.owner, b1.contained_in, b1.registrations) == (OWNER, 1, 1)
    assert table.refs[oid("b2")].registrations == 1
    assert not table.needs_registration(oid("b1"))  # registered on our behalf
    table.dec_local(ret)
    assert table.take_actions() == [FREE("ret"), REMOVE("b1", 1), REMOVE("b2", 1, owner=W2)]
    assert table.refs == {}


def test_add_contained_with_unknown_container_does_nothing():
    table = ReferenceTable()
    table.add_contained(oid("missing"), [(oid("b"), OWNER)])
    assert table.refs == {}


def test_add_contained_counts_registrations_of_an_already_borrowed_ref():
    table = ReferenceTable()
    assert table.inc_local(oid("b"), OWNER) is True
    table.hold_until_registered(None, [oid("b")])
    table.registration_done(oid("b"))
    ret = owned(table, "ret")
    table.add_contained(ret, [(oid("b"), OWNER)])
    assert table.refs[oid("b")].registrations == 2
    table.dec_local(oid("b"))
    assert table.take_actions() == []  # still contained
    table.dec_local(ret)
    # The owner counts both registrations (ours and the one made on our behalf).
    assert table.take_actions() == [FREE("ret"), REMOVE("b", 2)]


def test_add_contained_owned_inner_is_freed_with_container():
    table = ReferenceTable()
    mine = owned(table, "mine")
    ret = owned(table, "ret")
    table.add_contained(ret, [(mine, "")])
    assert table.refs[mine].registrations == 0
    table.dec_local(mine)
    assert table.take_actions() == []
    table.dec_local(ret)
    assert table.take_actions() == [FREE("ret"), FREE("mine")]


def test_containment_is_released_recursively():
    table = ReferenceTable()
    a = owned(table, "a")
    b = owned(table, "b", contains=["a"])
    c = owned(table, "c", contains=["b"])
    table.add_contained(c, [(oid("x"), OWNER)])
    for ref in (a, b):
        table.dec_local(ref)
    assert table.take_actions() == []
    table.dec_local(c)
    actions = table.take_actions()
    assert set((x.kind, x.object_id) for x in actions) == {
        (ActionKind.FREE, a),
        (ActionKind.FREE, b),
        (ActionKind.FREE, c),
        (ActionKind.REMOVE_BORROWER, oid("x")),
    }
    # containers go first
    order = [x.object_id for x in actions]
    assert order.index(c) < order.index(b) < order.index(a)
    assert table.refs == {}


def test_shared_inner_lives_until_last_container_goes():
    table = ReferenceTable()
    inner = owned(table, "inner")
    c1 = owned(table, "c1", contains=["inner"])
    c2 = owned(table, "c2", contains=["inner"])
    table.dec_local(inner)
    table.dec_local(c1)
    assert table.take_actions() == [FREE("c1")]
    table.dec_local(c2)
    assert table.take_actions() == [FREE("c2"), FREE("inner")]


def test_borrowed_container_releases_its_borrowed_inner_refs():
    table = ReferenceTable()
    assert table.inc_local(oid("box"), W1) is True
    table.hold_until_registered(None, [oid("box")])
    table.registration_done(oid("box"))
    table.add_contained(oid("box"), [(oid("x"), OWNER)])
    table.dec_local(oid("box"))
    assert table.take_actions() == [REMOVE("box", 1, owner=W1), REMOVE("x", 1)]


# ---- borrower side ---------------------------------------------------------------------------


def test_inc_local_returns_true_only_for_a_new_borrowed_ref():
    table = ReferenceTable()
    assert table.inc_local(oid("b"), OWNER) is True
    assert table.inc_local(oid("b"), OWNER) is False
    assert table.refs[oid("b")].local == 2
    assert table.inc_local(oid("o"), "") is False  # owned
    assert table.inc_local(oid("o"), "") is False


def test_inc_local_false_for_ref_known_through_a_container():
    table = ReferenceTable()
    ret = owned(table, "ret")
    table.add_contained(ret, [(oid("b"), OWNER)])
    assert table.inc_local(oid("b"), OWNER) is False
    assert table.refs[oid("b")].local == 1


def test_borrowed_ref_released_emits_remove_borrower_with_registration_count():
    table = ReferenceTable()
    b = oid("b")
    assert table.inc_local(b, OWNER)
    assert table.needs_registration(b)
    assert table.hold_until_registered(None, [b]) == [REGISTER("b")]
    assert not table.needs_registration(b) or table.refs[b].registering
    table.registration_done(b)
    assert not table.needs_registration(b)
    assert table.take_actions() == []
    table.dec_local(b)
    assert table.take_actions() == [REMOVE("b", 1)]
    assert b not in table.refs


def test_unregistered_borrowed_ref_release_reports_zero_registrations():
    # Count 0: nothing for the owner, but the worker still drops its cached value.
    table = ReferenceTable()
    table.inc_local(oid("b"), OWNER)
    table.dec_local(oid("b"))
    assert table.take_actions() == [REMOVE("b", 0)]
    assert table.refs == {}


def test_borrowed_ref_not_released_while_registration_in_flight():
    table = ReferenceTable()
    b = oid("b")
    table.inc_local(b, OWNER)
    table.hold_until_registered(None, [b])
    table.dec_local(b)
    assert table.take_actions() == [] and b in table.refs
    table.registration_done(b, ok=True)
    assert table.take_actions() == [REMOVE("b", 1)]


def test_failed_registration_is_not_counted():
    table = ReferenceTable()
    b = oid("b")
    table.inc_local(b, OWNER)
    table.hold_until_registered(None, [b])
    table.dec_local(b)
    table.registration_done(b, ok=False)
    assert table.take_actions() == [REMOVE("b", 0)]  # nothing registered at the owner
    assert table.refs == {}


def test_hold_until_registered_starts_one_registration_per_ref():
    table = ReferenceTable()
    b = oid("b")
    table.inc_local(b, OWNER)
    assert table.hold_until_registered(None, [b]) == [REGISTER("b")]
    assert table.hold_until_registered(None, [b]) == []  # already in flight


def test_hold_until_registered_skips_owned_registered_unknown_and_out_of_scope_refs():
    table = ReferenceTable()
    mine = owned(table, "mine")
    table.inc_local(oid("reg"), OWNER)
    table.hold_until_registered(None, [oid("reg")])
    table.registration_done(oid("reg"))
    holder = owned(table, "holder")
    started = table.hold_until_registered(holder, [mine, oid("reg"), oid("unknown")])
    assert started == []
    assert table.refs[holder].holds == 0


def test_hold_until_registered_keeps_container_until_registration_done():
    table = ReferenceTable()
    r = owned(table, "R")  # get(R) is deserializing R's value
    x = oid("x")
    assert table.inc_local(x, W1) is True  # rebuilt ref found inside R's value
    assert table.hold_until_registered(r, [x]) == [REGISTER("x", owner=W1)]
    assert table.refs[r].holds == 1
    table.dec_local(r)  # the user drops R immediately
    assert table.take_actions() == [] and r in table.refs
    table.registration_done(x)
    assert table.take_actions() == [FREE("R")]
    assert table.refs[x].registrations == 1
    table.dec_local(x)
    assert table.take_actions() == [REMOVE("x", 1, owner=W1)]


def test_hold_until_registered_waits_for_every_inner_ref():
    table = ReferenceTable()
    r = owned(table, "R")
    x, y = oid("x"), oid("y")
    table.inc_local(x, W1)
    table.inc_local(y, W2)
    started = table.hold_until_registered(r, [x, y])
    assert started == [REGISTER("x", owner=W1), REGISTER("y", owner=W2)]
    table.dec_local(r)
    table.registration_done(x)
    assert table.take_actions() == [] and table.refs[r].holds == 1
    table.registration_done(y, ok=False)  # failure still releases the hold
    assert table.take_actions() == [FREE("R")]


def test_two_containers_waiting_for_the_same_registration():
    table = ReferenceTable()
    r1 = owned(table, "R1")
    r2 = owned(table, "R2")
    x = oid("x")
    table.inc_local(x, W1)
    assert table.hold_until_registered(r1, [x]) == [REGISTER("x", owner=W1)]
    assert table.hold_until_registered(r2, [x]) == []  # joins the registration in flight
    table.dec_local(r1)
    table.dec_local(r2)
    assert table.take_actions() == []
    table.registration_done(x)
    assert table.take_actions() == [FREE("R1"), FREE("R2")]


def test_borrowed_container_hold_then_remove_borrower():
    table = ReferenceTable()
    r = oid("R")
    table.inc_local(r, OWNER)
    table.hold_until_registered(None, [r])
    table.registration_done(r)
    x = oid("x")
    table.inc_local(x, W1)
    table.hold_until_registered(r, [x])
    table.dec_local(r)
    assert table.take_actions() == []
    table.registration_done(x)
    assert table.take_actions() == [REMOVE("R", 1)]


def test_needs_registration():
    table = ReferenceTable()
    assert not table.needs_registration(oid("unknown"))
    mine = owned(table, "mine")
    assert not table.needs_registration(mine)
    table.inc_local(oid("b"), OWNER)
    assert table.needs_registration(oid("b"))


def test_count_rebuilt_counts_each_ref_and_reports_unregistered_borrows():
    from types import SimpleNamespace as Ref

    me = "me:1"
    table = ReferenceTable()
    mine = owned(table, "mine")
    registered = oid("reg")
    table.inc_local(registered, OWNER)
    table.registration_done(registered)
    refs = [Ref(object_id=mine, owner_address=me),
            Ref(object_id=oid("new"), owner_address=OWNER),
            Ref(object_id=oid("new"), owner_address=OWNER),
            Ref(object_id=registered, owner_address=OWNER)]
    assert set(table.count_rebuilt(refs, me)) == {oid("new")}
    assert table.refs[mine].local == 2 and table.refs[oid("new")].local == 2
    assert table.refs[registered].local == 2 and not table.refs[oid("new")].owned


def test_is_owned_and_summary():
    table = ReferenceTable()
    owned(table, "a")
    owned(table, "b")
    table.inc_local(oid("c"), OWNER)
    assert table.is_owned(oid("a"))
    assert not table.is_owned(oid("c"))
    assert not table.is_owned(oid("zzz"))
    assert table.summary() == {"owned": 2, "borrowed": 1}


# ---- property tests ---------------------------------------------------------------------------
#
# Stateful tests: hypothesis drives random interleavings of the table's operations
# against a simple model of every count, and shrinks any failure to a short trace.

BORROWERS = [W1, W2]


class OwnerMachine(RuleBasedStateMachine):
    """Owned objects under random inc/dec of local, submitted and borrowers."""

    def __init__(self):
        super().__init__()
        self.table = ReferenceTable()
        self.names = [oid(f"o{i}") for i in range(3)]
        self.model = {n: {"local": 1, "sub": 0, "borrowers": {}} for n in self.names}
        self.freed: set[bytes] = set()
        for n in self.names:
            self.table.add_owned(n)
            self.table.inc_local(n, "")

    def live(self, key=None):
        return [
            n for n in self.names if n not in self.freed and (key is None or key(self.model[n]))
        ]

    @precondition(lambda self: self.live())
    @rule(data=st.data())
    def inc_local(self, data):
        n = data.draw(st.sampled_from(self.live()))
        assert self.table.inc_local(n, "") is False
        self.model[n]["local"] += 1

    @precondition(lambda self: self.live(lambda m: m["local"]))
    @rule(data=st.data())
    def dec_local(self, data):
        n = data.draw(st.sampled_from(self.live(lambda m: m["local"])))
        self.table.dec_local(n)
        self.model[n]["local"] -= 1

    @precondition(lambda self: self.live())
    @rule(data=st.data())
    def inc_submitted(self, data):
        n = data.draw(st.sampled_from(self.live()))
        self.table.inc_submitted([n])
        self.model[n]["sub"] += 1

    @precondition(lambda self: self.live(lambda m: m["sub"]))
    @rule(data=st.data())
    def dec_submitted(self, data):
        n = data.draw(st.sampled_from(self.live(lambda m: m["sub"])))
        self.table.dec_submitted([n])
        self.model[n]["sub"] -= 1

    @precondition(lambda self: self.live())
    @rule(data=st.data(), borrower=st.sampled_from(BORROWERS), count=st.integers(1, 3))
    def add_borrower(self, data, borrower, count):
        n = data.draw(st.sampled_from(self.live()))
        assert self.table.add_borrower(n, borrower, count) is True
        b = self.model[n]["borrowers"]
        b[borrower] = b.get(borrower, 0) + count

    @precondition(lambda self: self.live(lambda m: m["borrowers"]))
    @rule(data=st.data(), count=st.integers(1, 3))
    def remove_borrower(self, data, count):
        n = data.draw(st.sampled_from(self.live(lambda m: m["borrowers"])))
        b = self.model[n]["borrowers"]
        borrower = data.draw(st.sampled_from(sorted(b)))
        self.table.remove_borrower(n, borrower, count)
        if b[borrower] > count:
            b[borrower] -= count
        else:
            del b[borrower]

    @rule(borrower=st.sampled_from(BORROWERS))
    def borrower_died(self, borrower):
        self.table.borrower_died(borrower)
        for m in self.model.values():
            m["borrowers"].pop(borrower, None)

    @invariant()
    def freed_exactly_when_nothing_holds_it(self):
        for action in self.table.take_actions():
            assert action.kind is ActionKind.FREE
            n = action.object_id
            assert n not in self.freed, "freed twice"
            m = self.model[n]
            assert not (m["local"] or m["sub"] or m["borrowers"]), f"freed while held: {m}"
            self.freed.add(n)
        for n, m in self.model.items():
            if n not in self.freed:
                assert m["local"] or m["sub"] or m["borrowers"], (
                    f"{m} is out of scope but not freed"
                )
                ref = self.table.refs[n]
                assert (ref.local, ref.submitted, ref.borrowers) == (
                    m["local"],
                    m["sub"],
                    m["borrowers"],
                )

    def teardown(self):
        # Whatever is still held is eventually dropped: everything is freed once.
        for n in self.live():
            m = self.model[n]
            for borrower, count in list(m["borrowers"].items()):
                self.table.remove_borrower(n, borrower, count)
                del m["borrowers"][borrower]
            while m["sub"]:
                self.table.dec_submitted([n])
                m["sub"] -= 1
            while m["local"]:
                self.table.dec_local(n)
                m["local"] -= 1
            self.freed_exactly_when_nothing_holds_it()
        assert self.freed == set(self.names)
        assert self.table.refs == {}


OwnerMachine.TestCase.settings = settings(
    max_examples=50, stateful_step_count=30, deadline=None, database=None
)
test_owner_never_frees_while_any_count_is_held = OwnerMachine.TestCase


@settings(max_examples=100, deadline=None, database=None)
@given(
    edges=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), max_size=12),
    order=st.permutations(list(range(6))),
)
def test_containers_free_before_their_inner_refs(edges, order):
    """Object i may contain objects j < i; dropping local refs in any order frees
    an inner object only after every container holding it was freed."""
    table = ReferenceTable()
    names = [oid(f"n{i}") for i in range(6)]
    contains: dict[int, list[int]] = {i: [] for i in range(6)}
    for a, b in edges:
        if b < a:
            contains[a].append(b)
    for i, n in enumerate(names):
        table.add_owned(n, [names[j] for j in contains[i]])
        table.inc_local(n, "")
    freed: list[int] = []
    dropped: set[int] = set()
    for i in order:
        table.dec_local(names[i])
        dropped.add(i)
        for action in table.take_actions():
            assert action.kind is ActionKind.FREE
            j = names.index(action.object_id)
            assert j in dropped, "freed while a local ref is held"
            assert j not in freed
            for container, inner in contains.items():
                if j in inner:
                    assert container in freed, f"n{j} freed while its container n{container} lives"
            freed.append(j)
    assert sorted(freed) == list(range(6))
    assert table.refs == {}


class BorrowerMachine(RuleBasedStateMachine):
    """Borrowed refs under random local counts, registrations (ok or failed) and
    containers holding them.  REMOVE_BORROWER must come exactly once per release,
    only when nothing holds the ref and no registration is in flight, with the
    number of successful registrations (own + on our behalf; 0 if none)."""

    def __init__(self):
        super().__init__()
        self.table = ReferenceTable()
        self.names = [oid(f"b{i}") for i in range(2)]
        self.local = {n: 0 for n in self.names}
        self.contained = {n: 0 for n in self.names}
        self.registrations = {n: 0 for n in self.names}
        self.in_flight = {n: False for n in self.names}
        self.boxes: list[tuple[bytes, bytes]] = []  # (container we own, inner)
        self.box_seq = 0
        self.known: set[bytes] = set()
        self.waiting: dict[bytes, list[bytes]] = {}  # inner -> containers held for it

    def held(self, n):
        return bool(self.local[n] or self.contained[n] or self.in_flight[n])

    @rule(i=st.integers(0, 1))
    def inc_local(self, i):
        n = self.names[i]
        assert (n in self.table.refs) is self.held(n)
        assert self.table.inc_local(n, OWNER) is (not self.held(n))
        self.local[n] += 1

    @rule(i=st.integers(0, 1))
    def dec_local(self, i):
        n = self.names[i]
        if self.local[n]:
            self.table.dec_local(n)
            self.local[n] -= 1

    @rule(i=st.integers(0, 1), with_container=st.booleans())
    def register(self, i, with_container):
        n = self.names[i]
        holder = None
        if with_container:
            holder = self.new_box(contains=None)
        in_scope = bool(self.local[n] or self.contained[n])
        needs = in_scope and self.registrations[n] == 0
        started = self.table.hold_until_registered(holder, [n])
        assert started == ([REGISTER(f"b{i}")] if needs and not self.in_flight[n] else [])
        if needs:
            self.in_flight[n] = True
        if holder is not None:
            # The container is dropped right away: only a hold can keep it alive.
            self.table.dec_local(holder)
            if needs:
                assert self.table.refs[holder].holds == 1
                self.waiting.setdefault(n, []).append(holder)
            else:
                assert holder not in self.table.refs

    @rule(i=st.integers(0, 1), ok=st.booleans())
    def registration_done(self, i, ok):
        n = self.names[i]
        if not self.in_flight[n]:
            return
        self.table.registration_done(n, ok=ok)
        self.in_flight[n] = False
        if ok:
            self.registrations[n] += 1
        for holder in self.waiting.pop(n, []):
            assert holder not in self.table.refs  # hold released with the registration

    @rule(i=st.integers(0, 1))
    def contain(self, i):
        n = self.names[i]
        box = self.new_box(contains=n)
        self.boxes.append((box, n))

    @precondition(lambda self: self.boxes)
    @rule(data=st.data())
    def drop_box(self, data):
        box, inner = self.boxes.pop(data.draw(st.integers(0, len(self.boxes) - 1)))
        self.table.dec_local(box)
        self.contained[inner] -= 1

    def new_box(self, contains):
        self.box_seq += 1
        box = oid(f"box{self.box_seq}")
        self.table.add_owned(box)
        self.table.inc_local(box, "")
        if contains is not None:
            self.table.add_contained(box, [(contains, OWNER)])
            self.contained[contains] += 1
            self.registrations[contains] += 1
        return box

    @invariant()
    def remove_borrower_reports_registrations(self):
        removed = []
        for action in self.table.take_actions():
            n = action.object_id
            if action.kind is ActionKind.FREE:
                assert n not in self.names
                continue
            assert action.kind is ActionKind.REMOVE_BORROWER
            assert not self.held(n), "released while held"
            assert action.count == self.registrations[n]
            assert action.owner == OWNER
            self.registrations[n] = 0
            removed.append(n)
        for n in self.names:
            if self.held(n):
                assert n in self.table.refs
                self.known.add(n)
            else:
                assert n not in self.table.refs
                assert removed.count(n) == (1 if n in self.known else 0)
                self.known.discard(n)

    def teardown(self):
        for box, inner in self.boxes:
            self.table.dec_local(box)
            self.contained[inner] -= 1
            self.remove_borrower_reports_registrations()
        for n in self.names:
            if self.in_flight[n]:
                self.table.registration_done(n)
                self.in_flight[n] = False
                self.registrations[n] += 1
                self.remove_borrower_reports_registrations()
            while self.local[n]:
                self.table.dec_local(n)
                self.local[n] -= 1
                self.remove_borrower_reports_registrations()
        assert self.table.refs == {}
        assert all(v == 0 for v in self.registrations.values())


BorrowerMachine.TestCase.settings = settings(
    max_examples=50, stateful_step_count=30, deadline=None, database=None
)
test_borrower_reports_exactly_the_registrations_it_made = BorrowerMachine.TestCase
