"""What the thread is (un)pickling for: the refs a pickle contains, the refs an
unpickle rebuilt, and the worker they belong to.

A leaf module: ObjectRef's own pickling (``shoal.api.object_ref``) and the
serializer (``shoal.core.serialization``) both read it, so neither imports the
other for it.
"""

from __future__ import annotations

import threading
from typing import Any


class SerializationContext(threading.local):
    refs: list | None = None  # collects refs while pickling
    rebuilt: list | None = None  # collects refs while unpickling
    worker: Any = None
    detached: bool = False  # a trial load (loads_detached): refs are rebuilt uncounted


current = SerializationContext()
