"""The reply to PUSH_TASK, with named fields.

The executing worker builds a :class:`TaskReply`; the owner reads one.  Only
:meth:`TaskReply.to_wire` and :meth:`TaskReply.from_wire` know the layout, a
fixed list of four (no names sent: a reply per task is on every task's path)::

    [status, returns, ran, info]

``returns``: one ``[index, value, contained]`` per return, or just its pickle
bytes for a plain small value (``executor`` documents both); ``ran``:
``[start, end]`` on the worker's wall clock, or None if the task never started;
``info``: None, or a map of the rarer fields that are set (``count``,
``lost``, ``retire``), by name.
"""

from __future__ import annotations

import enum


class ReplyStatus(enum.IntEnum):
    OK = 0
    APP_ERROR = 1  # the task raised: every return is its error
    CANCELLED = 2
    STOLEN = 3  # the worker handed the task back unstarted (work stealing, max_calls)
    # handed back unstarted: no live node had a copy of an argument (``lost``); its
    # owner recovers them, then queues it again
    ARGS_LOST = 4


_STATUSES = tuple(ReplyStatus)  # wire int -> ReplyStatus


class TaskReply:
    """What became of one task, as its worker tells the owner."""

    __slots__ = ("status", "returns", "ran", "item_count", "lost", "retire")

    def __init__(self, status: ReplyStatus, returns: list | None = None,
                 item_count: int | None = None, lost: list | None = None,
                 ran: list | None = None, retire: bool = False) -> None:
        self.status = status
        self.returns = [] if returns is None else returns
        self.item_count = item_count  # a generator task's items yielded (None: not one)
        self.lost = lost  # ARGS_LOST: the argument object ids no node had
        self.ran = ran  # [start, end]: this worker's clock, once it ran
        self.retire = retire  # the task reached its max_calls: return the lease

    def to_wire(self) -> list:
        info = None
        if self.item_count is not None or self.lost is not None or self.retire:
            info = {}
            if self.item_count is not None:
                info["count"] = self.item_count
            if self.lost is not None:
                info["lost"] = self.lost
            if self.retire:
                info["retire"] = True
        return [int(self.status), self.returns, self.ran, info]

    @classmethod
    def from_wire(cls, w: list) -> TaskReply:
        if w.__class__ is not list or len(w) != 4:
            raise ValueError(f"a PUSH_TASK reply is [status, returns, ran, info], got "
                             f"{type(w).__name__} {w!r:.80}")
        info = w[3]
        if info is None:  # the common case: nothing rare to read
            return cls(_STATUSES[w[0]], w[1], None, None, w[2])
        return cls(_STATUSES[w[0]], w[1], info.get("count"), info.get("lost"), w[2],
                   bool(info.get("retire", False)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaskReply) and all(
            getattr(self, name) == getattr(other, name) for name in self.__slots__)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"TaskReply({fields})"
