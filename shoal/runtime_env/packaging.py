"""Shipping local directories (``working_dir``, ``py_modules``) to every node.

The submitting process zips the directory (files in sorted order with fixed
timestamps, so the same content gives the same bytes), names it by the hash of
those bytes, and stores it once in the control store's key-value table
(namespace :data:`KV_NAMESPACE`).  A node fetches a package the first time an
env needs it and unpacks it under its cache directory, ``<root>/pkg/<hash>``:
unpacked into a temporary folder, then renamed into place, so concurrent
setups (two nodes on one machine, two workers' envs) never see half a package.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable

KV_NAMESPACE = "runtime_env_packages"
MAX_PACKAGE_BYTES = 100 << 20  # like Ray's limit for a working_dir
_ALWAYS_EXCLUDED = ("__pycache__", ".git", "*.pyc")
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def _excluded(rel_path: str, patterns: Iterable[str]) -> bool:
    parts = rel_path.split(os.sep)
    for pattern in patterns:
        pattern = pattern.rstrip("/")
        if fnmatch.fnmatch(rel_path, pattern) or any(fnmatch.fnmatch(p, pattern)
                                                     for p in parts):
            return True
    return False


def zip_directory(path: str, excludes: Iterable[str] = (), prefix: str = "") -> bytes:
    """The directory's files as deterministic zip bytes; names start with ``prefix``
    (a package directory keeps its own name, so it imports by that name)."""
    if not os.path.isdir(path):
        raise ValueError(f"runtime_env: {path!r} is not a directory")
    patterns = (*_ALWAYS_EXCLUDED, *excludes)
    buffer = io.BytesIO()
    total = 0
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for root, dirs, files in os.walk(path):
            rel_root = os.path.relpath(root, path)
            dirs[:] = sorted(d for d in dirs if not _excluded(
                os.path.normpath(os.path.join(rel_root, d)), patterns))
            for name in sorted(files):
                rel = os.path.normpath(os.path.join(rel_root, name))
                if _excluded(rel, patterns):
                    continue
                full = os.path.join(root, name)
                total += os.path.getsize(full)
                if total > MAX_PACKAGE_BYTES:
                    raise ValueError(f"runtime_env: {path!r} holds more than "
                                     f"{MAX_PACKAGE_BYTES >> 20} MiB; exclude what tasks "
                                     "do not need with 'excludes'")
                info = zipfile.ZipInfo(os.path.join(prefix, rel), _FIXED_TIME)
                info.external_attr = (os.stat(full).st_mode & 0o777) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                with open(full, "rb") as f:
                    zf.writestr(info, f.read())
    return buffer.getvalue()


def package_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:24]


def upload_directory(path: str, excludes: Iterable[str], prefix: str,
                     kv_put: Callable[[str, bytes], None]) -> str:
    """Zip ``path`` and store it (once) with ``kv_put(key, data)``; returns its hash."""
    data = zip_directory(path, excludes, prefix)
    digest = package_hash(data)
    kv_put(digest, data)
    return digest


def unpacked_path(root: str, digest: str) -> str:
    return os.path.join(root, "pkg", digest)


def unpack(root: str, digest: str, data: bytes) -> str:
    """Unpack package ``digest`` (its zip bytes) into the cache; returns its folder."""
    final = unpacked_path(root, digest)
    if os.path.isdir(final):
        return final
    if package_hash(data) != digest:
        raise ValueError(f"package {digest}: its content does not match its hash")
    os.makedirs(os.path.dirname(final), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{digest}-", dir=os.path.dirname(final))
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():
                zf.extract(info, tmp)
                mode = info.external_attr >> 16
                if mode:
                    os.chmod(os.path.join(tmp, info.filename), mode)
        os.rename(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not os.path.isdir(final):  # not a concurrent unpack that won the rename
            raise
    return final
