"""The skip-or-fail rule for optional data and packages: skip on a user's machine, fail in CI."""

from __future__ import annotations

import conftest
import pytest


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
