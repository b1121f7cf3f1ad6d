"""The web dashboard, the Chrome-trace timeline and the Prometheus metrics.

Modules, each with one job:

* :mod:`~shoal.dashboard.views` (pure): JSON for each page, built from the same
  LIST_STATE / CLUSTER_STATUS replies the state API and ``shoal status`` use.
* :mod:`~shoal.dashboard.timeline` (pure): task records -> Chrome trace events.
* :mod:`~shoal.dashboard.metrics` (pure): replies -> Prometheus text.
* :mod:`~shoal.dashboard.auth`: the cluster token as a login and a cookie.
* :mod:`~shoal.dashboard.server`: the aiohttp application (the only module that
  imports aiohttp); run as ``python -m shoal.dashboard``.
* :mod:`~shoal.dashboard.launcher`: starting it, lazily for ``init()`` and
  detached for ``shoal start --head``.

Importing this package imports nothing heavy, so ``shoal.timeline`` and the
launcher cost ``init`` nothing.
"""

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8265
