"""Unit tests for the object spilling options: node arguments and init's checks."""

from __future__ import annotations

import json
import os

import pytest

from shoal.api.session import _spilling_options
from shoal.launch.spilling import spilling_options


def test_node_arguments_for_one_or_several_directories():
    assert spilling_options(None, None, None) == []
    assert spilling_options("rel", 0.5, 1 << 20) == [
        "--object-spilling-directory", os.path.abspath("rel"),
        "--object-spilling-threshold", "0.5", "--min-spilling-size", str(1 << 20)]
    assert spilling_options(["/a", "/b"], None, None) == [
        "--object-spilling-directory", "/a", "--object-spilling-directory", "/b"]


def test_init_takes_rays_system_config_keys():
    config = json.dumps({"type": "filesystem", "params": {"directory_path": "/spill"}})
    assert _spilling_options({"_system_config": {
        "object_spilling_config": config, "object_spilling_threshold": 0.9,
        "min_spilling_size": 0}}) == [
        "--object-spilling-directory", "/spill", "--object-spilling-threshold", "0.9",
        "--min-spilling-size", "0"]
    assert _spilling_options({"object_spilling_directory": ("/x", "/y")}) == [
        "--object-spilling-directory", "/x", "--object-spilling-directory", "/y"]


@pytest.mark.parametrize("kwargs, error, match", [
    ({"_system_config": {"object_spilling_threshold": 1.5}}, ValueError,
     "object_spilling_threshold must be a fraction in"),
    ({"_system_config": {"object_spilling_threshold": 0}}, ValueError, "in \\(0, 1\\]"),
    ({"_system_config": {"min_spilling_size": -1}}, ValueError, "min_spilling_size"),
    ({"object_spilling_directory": 3}, TypeError, "object_spilling_directory must be"),
    ({"_system_config": "x"}, TypeError, "_system_config must be a dict"),
])
def test_init_refuses_bad_spilling_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        _spilling_options(kwargs)


def test_shoal_start_passes_spilling_directories_to_the_node():
    from shoal.cli import build_parser
    from shoal.launch.commands import _spec

    args = build_parser().parse_args(["start", "--head", "--object-spilling-directory", "/a",
                                      "--object-spilling-directory", "/b"])
    assert args.object_spilling_directory == ["/a", "/b"]
    spec = _spec(args)
    spec.head = True
    cmd = spec.command("session", "/tmp/logs", lifeline=False)
    assert cmd[-4:] == ["--object-spilling-directory", "/a", "--object-spilling-directory",
                        "/b"]
