"""``@shoal.remote`` on a function."""

from __future__ import annotations

import hashlib
import inspect
import threading
from typing import Any

import cloudpickle

from shoal.api import options as opts
from shoal.api.call_check import CallCheck, function_params, make_check
from shoal.api.placement_strategy import resolve_strategy
from shoal.core.task_spec import DYNAMIC, STREAMING, TaskKind, TaskSpec


def encode_num_returns(value: int | str) -> int:
    return {"streaming": STREAMING, "dynamic": DYNAMIC}.get(value, value)  # type: ignore


class RemoteFunction:
    def __init__(self, function: Any, options: dict) -> None:
        self._function = function
        self._options = opts.validate(opts.TASK_OPTIONS, options, f"remote function "
                                      f"{function.__qualname__}")
        self._is_generator = inspect.isgeneratorfunction(function)
        self._pickled: bytes | None = None
        self._function_id = b""
        self._call_check: CallCheck | None | bool = False  # False: not made yet
        self._lock = threading.Lock()
        self.__name__ = function.__name__
        self.__qualname__ = function.__qualname__
        self.__doc__ = function.__doc__
        self.__module__ = function.__module__
        self._check_dynamic(self._options)

    def __getstate__(self) -> dict:
        # The lock and the cached pickle stay behind; a copy re-exports itself.
        state = dict(self.__dict__)
        state.pop("_lock", None)
        state["_pickled"] = None
        state["_function_id"] = b""
        state["_call_check"] = False
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"Remote functions cannot be called directly. Instead of running "
            f"'{self.__name__}()', try '{self.__name__}.remote()'."
        )

    def _export(self) -> tuple[bytes, bytes]:
        if self._pickled is None:
            with self._lock:
                if self._pickled is None:
                    try:
                        data = cloudpickle.dumps(self._function)
                    except Exception as exc:
                        raise TypeError(
                            f"Could not serialize the remote function {self.__qualname__}: "
                            f"{type(exc).__name__}: {exc}") from exc
                    check_pickled_size(len(data), f"The remote function {self.__qualname__}")
                    self._function_id = hashlib.sha1(data).digest()[:16]
                    self._pickled = data
        return self._function_id, self._pickled  # type: ignore[return-value]

    def options(self, **options: Any) -> _BoundOptions:
        merged = {k: v for k, v in self._options.items() if k != "__shape__"}
        merged.update(opts.validate(opts.TASK_OPTIONS, options,
                                    f"remote function {self.__qualname__}"))
        self._check_dynamic(merged)
        return _BoundOptions(self._submit, self.__qualname__, merged)

    def _check_dynamic(self, options: dict) -> None:
        if options.get("num_returns") == "dynamic" and not self._is_generator:
            raise ValueError(f"num_returns='dynamic' can only be used with generator "
                             f"functions; {self.__qualname__} is not one")

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self._submit(self._options, args, kwargs)

    def _remote(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Ray's spelling: ``f._remote(args=[...], kwargs={...}, **options)``."""
        bound = self.options(**options) if options else self
        return bound.remote(*(args or ()), **(kwargs or {}))

    def _submit(self, options: dict, args: tuple, kwargs: dict) -> Any:
        from shoal.api.session import ensure_worker

        check = self._call_check
        if check is False:
            check = self._call_check = make_check(function_params(self._function),
                                                  self.__qualname__)
        if check is not None:
            check(args, kwargs)
        worker = ensure_worker()
        function_id, pickled = self._export()
        num_returns = options.get("num_returns")
        if num_returns is None:  # not given, or None (Ray: the default)
            num_returns = "streaming" if self._is_generator else 1
        wire, held, keepalive = worker.tasks.build_args(self.__name__, args, kwargs)
        spec = TaskSpec(
            task_id=worker.ids.task_id(),
            kind=TaskKind.NORMAL,
            name=options.get("name") or self.__name__,  # Ray: not the qualname
            function_id=function_id,
            function_bytes=pickled,
            args=wire,
            kwarg_names=list(kwargs),
            num_returns=encode_num_returns(num_returns),
            owner=worker.address,
            job_id=worker.job_id,
            resources=_shape(options),
            cold_returns=bool(options.get("_cold_returns")),
            args_in_place=bool(options.get("_read_args_in_place")),
            backpressure=max(0, options.get("_generator_backpressure_num_objects", -1)),
            max_calls=options.get("max_calls") or 0,
        )
        refs = worker.tasks.submit(
            spec, held, keepalive,
            max_retries=options.get("max_retries", 3),
            retry_exceptions=options.get("retry_exceptions", False),
            strategy=resolve_strategy(options, worker, spec.resources, f"{self.__name__}()"),
            runtime_env=worker.runtime_envs.resolve(options.get("runtime_env")),
        )
        if isinstance(refs, list):
            if spec.num_returns == 1 or spec.num_returns == DYNAMIC:
                return refs[0]
            if spec.num_returns == 0:
                return None
        return refs


# A function or actor class that pickles to more than this is refused: it almost
# always captured a large value by mistake (Ray's limit, and its wording).
MAX_PICKLED_BYTES = 100_000_000


def check_pickled_size(size: int, what: str) -> None:
    if size > MAX_PICKLED_BYTES:
        raise ValueError(
            f"{what} is too large ({size / 2**20:.0f} MiB > {MAX_PICKLED_BYTES / 2**20:.0f} "
            "MiB). Check that its definition does not capture a large array or other object "
            "in scope; put large objects in the object store with put() and pass the refs.")


def _shape(options: dict) -> dict:
    """The task's resource shape, computed once per options dict (they are
    never mutated after validation)."""
    shape = options.get("__shape__")
    if shape is None:
        shape = options["__shape__"] = opts.resource_shape(options, 1.0)
    return dict(shape)


class _BoundOptions:
    def __init__(self, submit: Any, qualname: str, options: dict) -> None:
        self._submit = submit  # the remote function's own ``_submit``
        self._qualname = qualname
        self._options = options

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self._submit(self._options, args, kwargs)

    def options(self, **options: Any) -> _BoundOptions:
        merged = {k: v for k, v in self._options.items() if k != "__shape__"}
        merged.update(opts.validate(opts.TASK_OPTIONS, options,
                                    f"remote function {self._qualname}"))
        return _BoundOptions(self._submit, self._qualname, merged)
