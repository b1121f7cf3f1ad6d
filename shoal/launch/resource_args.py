"""The rules for the resource quantities (and node arguments) a user gives, in one place.

``shoal.init``, ``shoal start``, ``Cluster.add_node``, the node process itself and
the ``@remote`` / ``.options`` tables all check with these functions, so a value is
accepted or refused the same way wherever it is written.  An error names the
argument as the user spelled it (``num_cpus`` in Python, ``--num-cpus`` on the
command line, ``option 'num_cpus'`` for a task) and the bad value.

Rules:

* a quantity (CPUs, GPUs, memory, a custom resource) is a real number, finite
  and >= 0; ``bool`` is not a number here;
* custom resources are a dict of non-empty string names to quantities; CPU,
  GPU and memory (and a node's object store) have their own arguments;
* an object store is a whole number of bytes of at least
  :data:`MIN_OBJECT_STORE_MEMORY`.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

# The smallest object store a node may have.  Ray refuses less than 75 MiB; we
# take less because our store has no fixed overhead of its own (the allocator
# needs nothing but 64-byte alignment) and test clusters run several 64 MiB
# stores side by side; below this a store holds too few objects to be useful.
MIN_OBJECT_STORE_MEMORY = 32 << 20

# How an argument is spelled in an error: (name, key of a resources dict or None).
Spell = Callable[[str, "str | None"], str]


def python_name(name: str, key: str | None = None) -> str:
    """``num_cpus``, ``resources['gpu_box']``: as written in a Python call."""
    return name if key is None else f"{name}[{key!r}]"


def flag_name(name: str, key: str | None = None) -> str:
    """``--num-cpus``, ``--resources['gpu_box']``: as written on the command line."""
    flag = "--" + name.replace("_", "-")
    return flag if key is None else f"{flag}[{key!r}]"


def option_name(name: str, key: str | None = None) -> str:
    """``option 'num_cpus'``: as written in ``@remote(...)`` / ``.options(...)``."""
    return f"option {python_name(name, key)!r}"


def quantity(label: str, value: Any) -> float:
    """``value`` as a float, or TypeError/ValueError naming ``label``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{label} must be a number, got {value!r}")
    if not 0 <= value < math.inf:  # NaN fails both comparisons
        raise ValueError(f"{label} must be a finite number >= 0, got {value!r}")
    return float(value)


# Resources that have an argument of their own, for a task or actor and for a node.
_OWN_ARGUMENT = {"CPU": "num_cpus", "GPU": "num_gpus", "memory": "memory"}
_NODE_OWN_ARGUMENT = {**_OWN_ARGUMENT, "object_store_memory": "object_store_memory"}


def custom_resources(value: Any, spell: Spell = python_name,
                     own: Mapping[str, str] = _OWN_ARGUMENT) -> dict[str, float]:
    """A copy of a custom resources dict with float quantities; None is ``{}``.
    ``own``: resource names that must be given by their own argument instead."""
    if value is None:
        return {}
    label = spell("resources", None)
    if not isinstance(value, Mapping):
        raise TypeError(f"{label} must be a dict of resource names to quantities, "
                        f"got {value!r}")
    out = {}
    for key, amount in value.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"{label}: resource names must be non-empty strings, got {key!r}")
        if key in own:
            raise ValueError(f"{label} must not contain {key!r}: give it as "
                             f"{spell(own[key], None)}")
        out[key] = quantity(spell("resources", key), amount)
    return out


def store_size(label: str, value: Any) -> int:
    """An object store size in bytes, at least :data:`MIN_OBJECT_STORE_MEMORY`;
    a whole float such as ``2e9`` is accepted too."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            isinstance(value, numbers.Integral) or float(value).is_integer()):
        raise TypeError(f"{label} must be a whole number of bytes, got {value!r}")
    if value < MIN_OBJECT_STORE_MEMORY:
        raise ValueError(f"{label} must be at least {MIN_OBJECT_STORE_MEMORY} bytes "
                         f"({MIN_OBJECT_STORE_MEMORY >> 20} MiB), got {value!r}")
    return int(value)


def port(label: str, value: Any) -> int:
    """A TCP port to listen on; 0 picks a free one."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{label} must be an int, got {value!r}")
    if not 0 <= value <= 65535:
        raise ValueError(f"{label} must be a port number from 0 to 65535, got {value!r}")
    return int(value)


def seconds(label: str, value: Any) -> float:
    """A timeout: a finite number of seconds > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{label} must be a number of seconds, got {value!r}")
    if not 0 < value < math.inf:
        raise ValueError(f"{label} must be a finite number of seconds > 0, got {value!r}")
    return float(value)


_NODE_CHECKS: dict[str, Callable[[Any, Spell], Any]] = {
    "num_cpus": lambda v, spell: quantity(spell("num_cpus", None), v),
    "num_gpus": lambda v, spell: quantity(spell("num_gpus", None), v),
    "memory": lambda v, spell: quantity(spell("memory", None), v),
    "resources": lambda v, spell: custom_resources(v, spell, _NODE_OWN_ARGUMENT),
    "object_store_memory": lambda v, spell: store_size(spell("object_store_memory", None), v),
    "port": lambda v, spell: port(spell("port", None), v),
    "node_timeout_s": lambda v, spell: seconds(spell("node_timeout_s", None), v),
}


def node_args(spell: Spell = python_name, **given: Any) -> dict[str, Any]:
    """The arguments of a node (``num_cpus``, ``num_gpus``, ``memory``,
    ``resources``, ``object_store_memory``, and a head's ``port`` and
    ``node_timeout_s``), checked and normalised; an argument that is None (the
    default) is left out."""
    out = {}
    for name, value in given.items():
        if value is not None:
            out[name] = _NODE_CHECKS[name](value, spell)
    return out


def resources_json(text: str, flag: str = "--resources") -> dict[str, float]:
    """The custom resources of a command-line flag given as a JSON object."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{flag} must be a JSON object such as '{{\"gpu_box\": 1}}', "
                         f"got {text!r} ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{flag} must be a JSON object such as '{{\"gpu_box\": 1}}', "
                         f"got {text!r}")
    return custom_resources(value, flag_name, _NODE_OWN_ARGUMENT)
