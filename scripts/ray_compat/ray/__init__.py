"""`import ray` -> shoal, for running Ray's public tests against shoal.

ray.X imports rayshim.X if that exists (test helpers written here), else shoal.X;
one module object per name, so classes are shared.
"""
import copyreg
import importlib
import importlib.abc
import importlib.util
import sys

import shoal

_RENAMES = {
    "ray.runtime_context": "shoal.api.runtime_context",
    "ray.remote_function": "shoal.api.remote_function",
    "ray.types": "rayshim.types",
    "ray.cloudpickle": "cloudpickle",
    "ray._raylet": "rayshim._raylet",
    # Ray's older home of the state API (ray.util.state)
    "ray.experimental.state.api": "shoal.util.state",
}


# Ray internals: importable (so a test file loads), but using them fails the test.
_INTERNAL = ("ray._private", "ray._common", "ray.experimental", "ray.core", "ray.autoscaler",
             "ray.util.client", "ray.dashboard", "ray.tests", "ray._raylet", "ray.util.state.")


class _Missing:
    """A Ray internal shoal does not have: any use of it raises."""

    def __init__(self, name):
        self._name = name

    def __call__(self, *args, **kwargs):
        raise NotImplementedError(f"{self._name} is a Ray internal (not in shoal)")

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Missing(f"{self._name}.{attr}")

    def __repr__(self):
        return f"<missing {self._name}>"

    def __iter__(self):
        return iter(())


def _stub_module(name):
    import types
    mod = types.ModuleType(name)
    mod.__path__ = []

    def __getattr__(attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Missing(f"{name}.{attr}")

    mod.__getattr__ = __getattr__
    return mod


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith("ray."):
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        name = spec.name
        candidates = [_RENAMES[name]] if name in _RENAMES else [
            "rayshim." + name[4:], "shoal." + name[4:]]
        last = None
        for cand in candidates:
            try:
                return importlib.import_module(cand)
            except ModuleNotFoundError as exc:
                if exc.name and not cand.startswith(exc.name):
                    raise
                last = exc
        if name.startswith(_INTERNAL):
            return _stub_module(name)
        raise ModuleNotFoundError(f"No module named {name!r} (shoal alias)", name=name) from last

    def exec_module(self, module):
        pass


sys.meta_path.insert(0, _Alias())


def __getattr__(name):
    if name in ("_private", "_common", "cluster_utils", "util", "actor", "exceptions",
                "_raylet", "runtime_context", "job_config", "runtime_env", "experimental",
                "cloudpickle", "types"):
        return importlib.import_module("ray." + name)
    return getattr(shoal, name)


# Assignments to ``ray.X`` that must reach shoal too (``ray`` *is* shoal here):
# Ray's tests fake ``ray.__version__`` to see a mismatch refused.  Only these: a
# patched function (mock.patch("ray.get")) is restored by deleting the alias's
# attribute, which would leave the patch in shoal for good.
_FORWARDED = {"__version__"}


class _RayModule(type(sys)):
    def __setattr__(self, name, value):
        if name in _FORWARDED:
            setattr(shoal, name, value)
        super().__setattr__(name, value)


def _reduce_ray_module(module):
    return importlib.import_module, (module.__name__,)  # by name, as any module


copyreg.pickle(_RayModule, _reduce_ray_module)  # (cloudpickle knows ModuleType only)
sys.modules[__name__].__class__ = _RayModule
