"""The node's object store: shared memory for objects, spilled to disk under pressure.

One job per module:

* :mod:`.table` - every object's lifecycle as a pure state machine (states,
  transitions, pins, disk copies); events in, actions out.
* :mod:`.policy` - which objects leave memory: the window to empty when a
  block is needed, the least recently used batch above the high-water mark;
  and how far to read ahead.
* :mod:`.readahead` - the spill order across files and the readers going
  through it, for read-ahead.
* :mod:`.allocator` - blocks of the arena.
* :mod:`.spill_io` - spill directories and files; blocking, run on threads.
* :mod:`.deferred_deletes` - when a freed spill file is deleted (once the disk
  is quiet); :mod:`.spill_file_deleter` deletes them on a thread of its own.
* :mod:`.service` - what the node agent serves (STORE_* requests, waiting for
  space and for seals and restores) around the table, the arena and the I/O.

The arena file's layout, which clients share, is :mod:`shoal.objects.arena`.
"""

from shoal.node.object_store.allocator import OutOfMemory as OutOfMemory
from shoal.node.object_store.service import PULL_CREATOR as PULL_CREATOR
from shoal.node.object_store.service import ObjectStore as ObjectStore
from shoal.node.object_store.service import StoreConfig as StoreConfig
from shoal.node.object_store.table import ObjectState as ObjectState
from shoal.node.object_store.table import ObjectStoreFullError as ObjectStoreFullError
from shoal.node.object_store.table import ObjectTable as ObjectTable
from shoal.node.object_store.table import StoredObject as StoredObject
