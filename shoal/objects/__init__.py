"""What a node's object store and its clients share: the arena file's layout and
where an object's bytes are (:mod:`shoal.objects.arena`).

Both ``shoal.node`` (the agent creates and manages the store) and ``shoal.core``
(every driver and worker maps it) import this package; it imports neither.
"""
