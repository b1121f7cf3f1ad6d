"""shoal/data is a library over the public API, like shoal/shuffle: no module in
it imports shoal.core, shoal.node, shoal.control or shoal.rpc (the AST check
of tests/unit/test_shuffle_imports.py, pointed at shoal/data).  ``import
shoal`` does not import pyarrow; ``shoal.data`` without pyarrow says how to
install it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import shoal.data
from tests.unit import test_shuffle_imports as checker

PACKAGE_DIR = os.path.dirname(shoal.data.__file__)


def _modules() -> list[str]:
    return sorted(os.path.join(PACKAGE_DIR, f) for f in os.listdir(PACKAGE_DIR)
                  if f.endswith(".py"))


@pytest.mark.parametrize("path", _modules(), ids=os.path.basename)
def test_data_modules_import_only_the_public_api(path, monkeypatch):
    monkeypatch.setattr(checker, "PACKAGE_DIR", PACKAGE_DIR)  # for relative imports
    assert checker.forbidden_in(checker.imported_names(path)) == []


def test_there_are_modules_to_check():
    assert len(_modules()) >= 15


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)


def test_import_shoal_does_not_import_pyarrow_but_shoal_data_is_an_attribute():
    out = _run("import sys, shoal\n"
               "assert 'pyarrow' not in sys.modules, 'import shoal loaded pyarrow'\n"
               "ds = shoal.data\n"
               "assert 'pyarrow' in sys.modules and ds.range is not None\n"
               "print('ok')")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_without_pyarrow_the_error_says_how_to_install_it():
    out = _run("import sys\n"
               "sys.modules['pyarrow'] = None  # as if it were not installed\n"
               "try:\n"
               "    import shoal.data\n"
               "except ImportError as exc:\n"
               "    print(exc)\n")
    assert out.returncode == 0, out.stderr
    assert "pip install 'shoal[data]'" in out.stdout


def test_the_public_names():
    assert set(shoal.data.__all__) == {
        "ActorPoolStrategy", "DataContext", "DataIterator", "Dataset", "ExecutionOptions",
        "ExecutionResources", "MaterializedDataset", "Schema", "TaskPoolStrategy",
        "UserCodeException", "from_arrow", "from_items", "from_numpy", "from_pandas", "range",
        "range_tensor", "read_binary_files", "read_csv", "read_json", "read_numpy",
        "read_parquet", "read_text"}
