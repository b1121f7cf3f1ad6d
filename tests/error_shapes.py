"""Exception classes of awkward shapes, shared by the error-envelope tests (unit and
with real workers): what the envelope must carry whole."""

from __future__ import annotations

import errno
import threading


class PositionalInit(Exception):
    def __init__(self, code, msg):
        super().__init__(f"{code}: {msg}")
        self.code = code


class KeywordOnlyInit(ValueError):
    def __init__(self, *, code, msg):
        super().__init__(msg)
        self.code = code


class MyMemoryError(MemoryError):
    def __init__(self, needed):
        super().__init__(f"needed {needed} bytes")
        self.needed = needed


class MyOSError(OSError):
    def __init__(self, path):
        super().__init__(errno.EACCES, "not allowed", path)


class MyKeyError(KeyError):
    def __init__(self, key, where):
        super().__init__(key)
        self.where = where


class Halt(BaseException):
    def __init__(self, reason, *, hard):
        super().__init__(reason)
        self.hard = hard


class WithLock(Exception):
    """Its attribute cannot be pickled."""

    def __init__(self, msg):
        super().__init__(msg)
        self.lock = threading.Lock()


class BrokenReduce(Exception):
    def __reduce__(self):
        raise RuntimeError("reduce exploded")
