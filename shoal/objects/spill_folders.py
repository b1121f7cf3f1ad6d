"""Removing nodes' spill folders: shared by a node that stops and by the
starter of a node it had to kill, so it lives below both."""

from __future__ import annotations

import os
import shutil

MADE_BY_SHOAL = ".made-by-shoal"  # in a spill root shoal created: removed once it is empty


def remove_node_folders(folders: list[str]) -> None:
    """Remove nodes' spill folders, and each root that shoal created once the
    last node's folder has left it (a directory the user made stays)."""
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
        root = os.path.dirname(folder)
        try:
            if os.listdir(root) == [MADE_BY_SHOAL]:
                os.remove(os.path.join(root, MADE_BY_SHOAL))
                os.rmdir(root)
        except OSError:
            pass  # gone already, or another node just made its folder there
