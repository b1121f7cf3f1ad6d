import importlib


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        return importlib.import_module("rayshim.core.generated." + name)
    except ModuleNotFoundError:
        from ray import _Missing
        return _Missing(f"ray.core.generated.{name}")
