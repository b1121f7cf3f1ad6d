"""Ray's ``ray.util.multiprocessing``: a ``multiprocessing.Pool`` on actors."""

from shoal.util.multiprocessing.pool import AsyncResult as AsyncResult
from shoal.util.multiprocessing.pool import Pool as Pool
from shoal.util.multiprocessing.pool import TimeoutError as TimeoutError  # noqa: A004

__all__ = ["AsyncResult", "Pool", "TimeoutError"]
