"""``@shoal.remote`` on a class: actor classes, handles and methods."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field, replace
from typing import Any

import cloudpickle

from shoal.api import options as opts
from shoal.api.call_check import (
    CallCheck,
    Params,
    constructor_params,
    make_check,
    method_params,
)
from shoal.api.id_types import ActorIdHex, HexId
from shoal.api.placement_strategy import resolve_strategy
from shoal.api.remote_function import check_pickled_size, encode_num_returns
from shoal.core import ids
from shoal.core.concurrency_groups import SYSTEM_GROUP
from shoal.core.task_spec import DYNAMIC, TaskKind, TaskSpec, strategy_to_wire

# Methods every actor has (run by the executor): wait until it is up; exit gracefully.
BUILTIN_METHODS = ("__ray_ready__", "__ray_terminate__", "__ray_call__")


def _no_dags(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError("shoal does not support Ray DAGs (.bind()); use .remote()")


def method(**options: Any):
    """Per-method options, e.g. ``@shoal.method(num_returns=2)``."""
    checked = opts.validate(opts.METHOD_OPTIONS, options, "actor method")

    def decorate(fn):
        fn.__shoal_method_options__ = checked
        return fn

    return decorate


@dataclass
class ActorMeta:
    """What a handle knows of its actor's class; travels with the handle."""

    class_name: str
    methods: dict[str, dict] = field(default_factory=dict)
    is_async: bool = False
    max_task_retries: int = 0
    # each method's parameters, to check a call's arguments (None: not checked)
    params: dict[str, Params | None] = field(default_factory=dict)
    concurrency_groups: tuple = ()  # the group names the actor declared
    # calls may start in another order than sent (a call waiting for its arguments does
    # not hold back later ones): Ray's default for async and threaded actors
    out_of_order: bool = False
    # Ray's ``__ray_invocation_decorator__`` of a method: wraps the caller's side of a
    # call, ``invoke(args, kwargs) -> refs``, and may change the arguments or result
    invocation_decorators: dict[str, Any] = field(default_factory=dict)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_checks", None)  # made again where the handle lands
        return state

    def call_check(self, method: str) -> CallCheck | None:
        checks = self.__dict__.setdefault("_checks", {})
        check = checks.get(method, False)
        if check is False:
            check = checks[method] = make_check(self.params.get(method),
                                                f"{self.class_name}.{method}")
        return check


def _meta_for(cls: type) -> ActorMeta:
    meta = ActorMeta(cls.__name__)
    for name, member in inspect.getmembers(cls):
        if not callable(member) or (name.startswith("__") and name != "__call__"):
            continue
        if inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member):
            meta.is_async = True
        meta.methods[name] = dict(getattr(member, "__shoal_method_options__", {}))
        if inspect.isgeneratorfunction(member) or inspect.isasyncgenfunction(member):
            meta.methods[name]["_generator"] = True  # streams unless num_returns says
        meta.params[name] = method_params(cls, name)
        decorator = getattr(member, "__ray_invocation_decorator__", None)
        if callable(decorator):
            meta.invocation_decorators[name] = decorator
    return meta


class ActorClassInheritanceException(TypeError):
    """A class statement tried to subclass an actor class (a ``@remote`` class)."""


class ActorClass:
    def __init__(self, cls: type, options: dict, *class_body: Any) -> None:
        if class_body:  # ``class Derived(SomeActor):`` calls ActorClass(name, bases, ns)
            raise ActorClassInheritanceException(
                f"class {cls}: Inheriting from actor classes is not currently supported. "
                "Subclass the plain class and apply @shoal.remote to the subclass instead.")
        self._cls = cls
        self._options = opts.validate(opts.ACTOR_OPTIONS, options, f"actor {cls.__name__}")
        self.__name__ = cls.__name__
        self.__qualname__ = cls.__qualname__
        self.__doc__ = cls.__doc__
        self.__module__ = cls.__module__
        self._class_meta: ActorMeta | None = None  # worked out at the first .remote()
        self._init_check: CallCheck | None = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_class_meta"] = state["_init_check"] = None  # made again where it lands
        return state

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"Actors cannot be instantiated directly. Instead of '{self.__name__}()', "
            f"use '{self.__name__}.remote()'."
        )

    def remote(self, *args: Any, **kwargs: Any) -> ActorHandle:
        return self._create(self._options, args, kwargs)

    def _remote(self, args: Any = None, kwargs: Any = None, **options: Any) -> ActorHandle:
        """Ray's spelling: ``A._remote(args=[...], kwargs={...}, **options)``."""
        bound = self.options(**options) if options else self
        return bound.remote(*(args or ()), **(kwargs or {}))

    bind = staticmethod(_no_dags)

    def __getattr__(self, name: str) -> Any:
        # the class's own attributes (class constants, classmethods, staticmethods)
        cls = self.__dict__.get("_cls")
        if cls is None or (name.startswith("__") and name.endswith("__")):
            raise AttributeError(name)
        return getattr(cls, name)

    def __dir__(self) -> list[str]:
        return sorted(set(dir(self._cls)) | {"options", "remote", "bind"})

    def options(self, **options: Any) -> _BoundActorClass:
        merged = dict(self._options)
        merged.update(opts.validate(opts.ACTOR_OPTIONS, options, f"actor {self.__name__}"))
        return _BoundActorClass(self._create, merged)

    def _create(self, options: dict, args: tuple, kwargs: dict) -> ActorHandle:
        from shoal.api.session import ensure_worker

        if self._class_meta is None:
            self._init_check = make_check(constructor_params(self._cls), self.__name__)
            self._class_meta = _meta_for(self._cls)
        if self._init_check is not None:
            self._init_check(args, kwargs)
        worker = ensure_worker()
        groups = options.get("concurrency_groups") or {}
        _check_method_groups(self._class_meta, groups)
        meta = replace(self._class_meta, max_task_retries=options.get("max_task_retries", 0),
                       concurrency_groups=tuple(groups),
                       out_of_order=_out_of_order(self._class_meta, options))
        name = options.get("name")
        namespace = options.get("namespace") or worker.namespace
        lifetime = options.get("lifetime") or worker.config.default_actor_lifetime
        detached = lifetime == "detached"
        wire, _held, keepalive = worker.tasks.build_args(f"{self.__name__}.__init__", args,
                                                         kwargs)
        try:
            creation = cloudpickle.dumps({
                "cls": self._cls,
                "args": wire,
                "kwarg_names": list(kwargs),
                "max_concurrency": options.get("max_concurrency"),
                "concurrency_groups": options.get("concurrency_groups"),
                "resources": opts.resource_shape(options, 0.0),
                "name": name,
            })
        except Exception as exc:
            raise TypeError(f"Could not serialize the actor class {self.__name__}: "
                            f"{type(exc).__name__}: {exc}") from exc
        check_pickled_size(len(creation), f"The actor {self.__name__}")
        # strong handles hold the scope token: the actor ends with the last one
        token = None if detached else worker.put(None)
        shape = opts.resource_shape(options, 0.0)
        reply = worker.actors.create({
            "actor_id": ids.actor_id_hex(worker.job_id),
            "job_id": worker.job_id,
            "owner_worker_id": worker.worker_id,
            "owner_node_id": worker.node_id,
            "class_name": self.__name__,
            "name": name,
            "namespace": namespace,
            "detached": detached,
            "get_if_exists": options.get("get_if_exists", False),
            "max_restarts": options.get("max_restarts", 0),
            "resources": shape,
            "placement_cpus": 1.0 if _names_no_resources(options) else 0.0,
            "scheduling_strategy": strategy_to_wire(resolve_strategy(
                options, worker, shape, f"actor {self.__name__}")),
            "runtime_env": worker.runtime_envs.resolve(options.get("runtime_env"))[0],
            "creation": creation,
            "handle_meta": cloudpickle.dumps(meta),
        }, keepalive, None if token is None else token.object_id)
        if reply["existing"]:  # get_if_exists found it: a weak handle, as get_actor's
            token = None
        return ActorHandle(reply["actor_id"], meta, worker, token)


def _out_of_order(meta: ActorMeta, options: dict) -> bool:
    concurrent = meta.is_async or (options.get("max_concurrency") or 1) > 1
    wanted = options.get("allow_out_of_order_execution")
    if wanted is False and concurrent:
        raise ValueError(f"actor {meta.class_name}: allow_out_of_order_execution=False is "
                         "not supported for async or threaded (max_concurrency > 1) actors")
    return concurrent if wanted is None else wanted


def _check_method_groups(meta: ActorMeta, groups: dict) -> None:
    """Every ``@method(concurrency_group=)`` must name a group the actor declares."""
    for name, options in meta.methods.items():
        group = options.get("concurrency_group")
        if group and group != SYSTEM_GROUP and group not in groups:
            raise ValueError(
                f"method {meta.class_name}.{name} is in concurrency group {group!r}, which "
                f"actor {meta.class_name} does not declare (concurrency_groups="
                f"{dict(groups)!r})")


class _BoundActorClass:
    def __init__(self, create: Any, options: dict) -> None:
        self._create = create  # the actor class's own ``_create``
        self._options = options

    def remote(self, *args: Any, **kwargs: Any) -> ActorHandle:
        return self._create(self._options, args, kwargs)


def _names_no_resources(options: dict) -> bool:
    """Ray's rule: an actor that asks for no resource at all needs a node with a CPU
    to be placed on (it holds none while it runs); a placement group decides itself."""
    strategy = options.get("scheduling_strategy")
    if strategy is not None and type(strategy).__name__ == "PlacementGroupSchedulingStrategy":
        return False
    if options.get("placement_group") not in (None, "default"):
        return False
    return all(options.get(key) is None for key in
               ("num_cpus", "num_gpus", "memory", "resources", "accelerator_type"))


class ActorHandle:
    """A handle to an actor.  A *strong* handle holds the actor's scope token (an
    ObjectRef its owner made), so the actor lives while any strong handle does, in any
    process; a *weak* one (``_token`` None) keeps nothing alive (:mod:`actor_scope`)."""

    def __init__(self, actor_id: str, meta: ActorMeta, worker: Any, token: Any = None) -> None:
        self._actor_id = ActorIdHex(actor_id)  # a str, with Ray's .hex(), .binary(), .job_id
        self._meta = meta
        self._worker = worker
        self._token = token

    @property
    def _ray_actor_id(self) -> HexId:
        """Ray's spelling of the actor's id (``handle._ray_actor_id.hex()``)."""
        return self._actor_id

    def __getattr__(self, name: str) -> ActorMethod:
        meta = self.__dict__.get("_meta")
        if meta is not None and name in BUILTIN_METHODS:
            return ActorMethod(self, name, {}, meta, self._token)
        if meta is None or name.startswith("__"):
            raise AttributeError(name)
        if name not in meta.methods:
            raise AttributeError(f"'{meta.class_name}' actor has no method '{name}'")
        return ActorMethod(self, name, meta.methods[name], meta, self._token)

    def __dir__(self) -> list[str]:
        meta = self._meta
        return sorted(set(meta.methods) | set(BUILTIN_METHODS) | {"__init__"})

    def __reduce__(self):
        # the token's ref pickles with it: the borrow protocol tracks the copy
        return (_rebuild_handle, (self._actor_id, self._meta, self._token))

    def __repr__(self) -> str:
        return f"Actor({self._meta.class_name}, {self._actor_id})"

    def __hash__(self) -> int:
        return hash(self._actor_id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorHandle) and other._actor_id == self._actor_id

    @property
    def actor_id(self) -> str:
        return self._actor_id


def handle_of_running_actor(actor_id: str, cls: type, worker: Any) -> ActorHandle:
    """A handle an actor makes to itself (``get_runtime_context().current_actor``):
    weak, or the actor could never go out of scope."""
    return ActorHandle(actor_id, _meta_for(cls), worker)


def _rebuild_handle(actor_id: str, meta: ActorMeta, token: Any = None) -> ActorHandle:
    from shoal.core import context

    worker = context.current_worker_or_none()
    executor = getattr(worker, "executor", None)
    if executor is not None and executor.actor_id == actor_id:
        token = None  # an actor's handle to itself is weak (the ref is dropped again)
    return ActorHandle(actor_id, meta, worker, token)


class ActorMethod:
    def __init__(self, handle: ActorHandle, name: str, options: dict, meta: ActorMeta,
                 pin: Any) -> None:
        self._handle = handle
        self._name = name
        self._options = options
        self._meta = meta  # the handle's: what the actor's class declares
        self._pin = pin  # the handle's scope token (None for a weak handle)
        # read on every call: worked out once
        self._task_name = options.get("name") or f"{meta.class_name}.{name}"
        num_returns = options.get("num_returns")
        if num_returns is None:  # not given, or None (Ray: the default)
            num_returns = "streaming" if options.get("_generator") else 1
        self._num_returns = encode_num_returns(num_returns)
        self._max_retries = options.get("max_task_retries", meta.max_task_retries)
        self._retry_exceptions = options.get("retry_exceptions", False)
        self._backpressure = max(0, options.get("_generator_backpressure_num_objects", -1))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"Actor methods cannot be called directly. Instead of running "
            f"'object.{self._name}()', try 'object.{self._name}.remote()'."
        )

    bind = staticmethod(_no_dags)

    def __dir__(self) -> list[str]:
        return ["bind", "options", "remote"]

    def options(self, **options: Any) -> ActorMethod:
        merged = dict(self._options)
        merged.update(opts.validate(opts.METHOD_OPTIONS, options, f"actor method {self._name}"))
        group = merged.get("concurrency_group")
        meta = self._meta
        if group and group != SYSTEM_GROUP and group not in meta.concurrency_groups:
            raise ValueError(f"actor {meta.class_name} has no concurrency group {group!r} "
                             f"(it declares {list(meta.concurrency_groups)})")
        return ActorMethod(self._handle, self._name, merged, self._meta, self._pin)

    def _remote(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Ray's spelling: ``method._remote(args=[...], kwargs={...}, num_returns=2)``."""
        method = self.options(**options) if options else self
        return method.remote(*(args or ()), **(kwargs or {}))

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        decorator = self._meta.invocation_decorators.get(self._name)
        if decorator is not None:
            return decorator(self._invoke)(args, kwargs)
        return self._submit(args, kwargs)

    def _invoke(self, args: Any, kwargs: Any) -> Any:
        """The call as an invocation decorator wraps it (a list or tuple of args)."""
        return self._submit(tuple(args), dict(kwargs or {}))

    def _submit(self, args: tuple, kwargs: dict) -> Any:
        from shoal.api.session import ensure_worker

        check = self._meta.call_check(self._name)
        if check is not None:
            check(args, kwargs)
        worker = ensure_worker()
        num_returns = self._num_returns
        wire, held, keepalive = worker.tasks.build_args(self._task_name, args, kwargs)
        spec = TaskSpec(
            task_id=worker.ids.task_id(),
            kind=TaskKind.ACTOR_TASK,
            name=self._task_name,
            function_id=b"",
            args=wire,
            kwarg_names=list(kwargs),
            num_returns=num_returns,
            owner=worker.address,
            job_id=worker.job_id,
            actor_id=self._handle.actor_id,
            method=self._name,
            concurrency_group=self._options.get("concurrency_group") or None,
            backpressure=self._backpressure,
        )
        refs = worker.tasks.submit(spec, held, keepalive, max_retries=self._max_retries,
                                   retry_exceptions=self._retry_exceptions,
                                   in_order=not self._meta.out_of_order,
                                   actor_pin=self._pin)
        if isinstance(refs, list):
            if num_returns == 1 or num_returns == DYNAMIC:
                return refs[0]
            if num_returns == 0:
                return None
        return refs
