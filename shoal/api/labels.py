"""Checking ``label_selector`` and ``fallback_strategy`` options (Ray's syntax).

A selector maps a label key to a condition on its value::

    {"ray.io/market-type": "spot"}           equal
    {"region": "!us-west-1"}                 not equal
    {"gpu": "in(H100, B200)"}                one of
    {"gpu": "!in(H100, B200)"}               none of

Keys are Kubernetes label keys (an optional DNS-subdomain prefix and ``/``, then
a name of up to 63 characters); values are label values (up to 63 characters:
letters, digits, ``-_.``, starting and ending alphanumeric).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def _check_key(key: Any, what: str) -> None:
    if not isinstance(key, str) or not key:
        raise ValueError(f"{what}: label key must be a non-empty string, got {key!r}")
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _PREFIX.match(prefix)):
        raise ValueError(f"{what}: invalid label key prefix {prefix!r} in {key!r}")
    if len(name) > 63 or not _NAME.match(name):
        raise ValueError(f"{what}: invalid label key {key!r}: a name of up to 63 letters, "
                         "digits and '-_.', starting and ending with a letter or digit")


def _check_value(value: str, key: str, what: str) -> None:
    if len(value) > 63 or not _VALUE.match(value):
        raise ValueError(f"{what}: invalid value {value!r} for label {key!r}")


def _check_condition(condition: Any, key: str, what: str) -> None:
    if not isinstance(condition, str):
        raise ValueError(f"{what}: the condition on label {key!r} must be a string, "
                         f"got {condition!r}")
    body = condition[1:] if condition.startswith("!") else condition
    if body.startswith("in(") or "(" in body or ")" in body:
        if not (body.startswith("in(") and body.endswith(")")):
            raise ValueError(f"{what}: invalid condition {condition!r} on label {key!r} "
                             "(expected 'value', '!value', 'in(a, b)' or '!in(a, b)')")
        items = [item.strip() for item in body[3:-1].split(",")]
        if not all(items):
            raise ValueError(f"{what}: empty value in {condition!r} on label {key!r}")
        for item in items:
            _check_value(item, key, what)
        return
    _check_value(body, key, what)


def check_label_selector(selector: Any, what: str = "option 'label_selector'") -> Any:
    if selector is None:
        return None
    if not isinstance(selector, Mapping):
        raise TypeError(f"{what} must be a dict of label keys to conditions, got {selector!r}")
    for key, condition in selector.items():
        _check_key(key, what)
        _check_condition(condition, key, what)
    return selector


def check_fallback_strategy(value: Any) -> Any:
    """A list of alternative placements, each ``{"label_selector": {...}}``."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise TypeError(f"option 'fallback_strategy' must be a list of dicts, got {value!r}")
    for entry in value:
        if not isinstance(entry, Mapping):
            raise ValueError(f"option 'fallback_strategy': each entry must be a dict, "
                             f"got {entry!r}")
        unknown = set(entry) - {"label_selector"}
        if unknown:
            raise ValueError(f"option 'fallback_strategy': unsupported key(s) "
                             f"{sorted(unknown)} (supported: label_selector)")
        check_label_selector(entry.get("label_selector"),
                             "option 'fallback_strategy' label_selector")
    return value
