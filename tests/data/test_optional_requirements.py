"""The skip-or-fail rule for optional data and packages: skip on a user's machine, fail in CI."""

from __future__ import annotations

import doctest
import importlib.metadata
import importlib.util
import re
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

import conftest


def test_missing_things_skip_with_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="install it with: apt-get install -y x"):
        conftest.require("/no/such/dataset", "apt-get install -y x")
    with pytest.raises(pytest.skip.Exception, match="pip install nope"):
        conftest.require("no_such_module_forgetless", "pip install nope")


def test_missing_things_fail_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="CI must have"):
        conftest.require("/no/such/dataset", "apt-get install -y x")


def test_present_things_are_returned() -> None:
    assert conftest.require("numpy", "pip install numpy").__name__ == "numpy"
    assert conftest.require("/", "nothing").is_dir()


def test_missing_helper_skips_or_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="only 3 faces; install it with: apt-get"):
        conftest.missing("only 3 faces", "apt-get install -y fonts")
    monkeypatch.setattr(conftest, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="CI must have.*only 3 faces"):
        conftest.missing("only 3 faces", "apt-get install -y fonts")


# The root conftest.py (doctests of modules that need an optional package) is loaded by pytest
# as a plugin; the module name "conftest" is this folder's, so import it under another name.
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def root_conftest() -> ModuleType:
    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _doctest_item(module: str) -> Any:
    test = doctest.DocTest([], {"__name__": module}, module, None, None, None)
    return SimpleNamespace(dtest=test, name=module)


def test_doctests_of_optional_modules_skip_with_the_install_line(
    root_conftest: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(root_conftest, "IN_CI", False)
    monkeypatch.setitem(root_conftest.OPTIONAL_DOCTESTS, "forgetless.fake", ("no_such_pkg", "X"))
    for name in ("forgetless.fake", "forgetless.fake.Class.method", "forgetless.fake.sub"):
        with pytest.raises(pytest.skip.Exception, match="'no_such_pkg'.*install it with: X"):
            root_conftest.pytest_runtest_setup(_doctest_item(name))
    # Other doctests, doctests whose package is there, and plain tests are left alone.
    root_conftest.pytest_runtest_setup(_doctest_item("forgetless.fakeish"))
    monkeypatch.setitem(root_conftest.OPTIONAL_DOCTESTS, "forgetless.np", ("numpy", "Y"))
    root_conftest.pytest_runtest_setup(_doctest_item("forgetless.np"))
    root_conftest.pytest_runtest_setup(SimpleNamespace(name="test_x"))


def test_doctests_of_optional_modules_fail_in_ci(
    root_conftest: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(root_conftest, "IN_CI", True)
    monkeypatch.setitem(root_conftest.OPTIONAL_DOCTESTS, "forgetless.fake", ("no_such_pkg", "X"))
    with pytest.raises(pytest.fail.Exception, match="CI must have.*'no_such_pkg'"):
        root_conftest.pytest_runtest_setup(_doctest_item("forgetless.fake"))


def test_doctest_install_lines_name_real_extras(root_conftest: ModuleType) -> None:
    assert {"forgetless.distributed"} <= set(root_conftest.OPTIONAL_DOCTESTS)
    requirements = importlib.metadata.requires("forgetless") or []
    for package, hint in root_conftest.OPTIONAL_DOCTESTS.values():
        extra = re.fullmatch(r'pip install -e "\.\[(\w+)\]" in forgetless\'s folder', hint)
        assert extra is not None, hint
        # The extra exists and installs the package (e.g. 'torch==2.13.0; extra == "torch"').
        assert any(
            req.startswith(package) and f'extra == "{extra[1]}"' in req for req in requirements
        ), (package, hint)
