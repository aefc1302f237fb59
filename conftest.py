"""Doctests of modules that need an optional package follow the tests' rule (tests/conftest.py).

On a machine without the package, such a module's doctests are skipped with the pip line that
installs it; in CI (``CI`` set) they fail instead, since CI installs every extra and a skip there
would hide a broken install. This file sits at the repository root so that it covers
``src/forgetless`` too, which ``testpaths`` collects with ``--doctest-modules``.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

from forgetless._install import install_line

# The same rule as tests/conftest.py.
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")

# Module (or package, or one function) whose doctests need an optional package
# -> (import name, install line).
OPTIONAL_DOCTESTS: dict[str, tuple[str, str]] = {
    "forgetless.distributed": ("dask", install_line("dask")),
    "forgetless.adaptation.views.random_affine": ("torch", install_line("torch")),
    "forgetless.adaptation.training.supervised_contrastive": ("torch", install_line("torch")),
}


def doctest_requirement(item: pytest.Item) -> tuple[str, str] | None:
    """``(package, install line)`` when ``item`` is a doctest of a module listed above."""
    test = getattr(item, "dtest", None)  # only doctest items carry a DocTest
    if test is None:
        return None
    module = str(test.globs.get("__name__", ""))
    for name, requirement in OPTIONAL_DOCTESTS.items():
        # a whole module, or one function's doctest (the test's qualified name)
        if module == name or module.startswith(name + ".") or test.name == name:
            return requirement
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    requirement = doctest_requirement(item)
    if requirement is None:
        return
    package, install_hint = requirement
    if importlib.util.find_spec(package) is not None:
        return
    message = (
        f"this doctest needs Python package {package!r}, which is not installed; "
        f"install it with: {install_hint}"
    )
    if IN_CI:
        pytest.fail(f"CI must have every optional dependency: {message}", pytrace=False)
    pytest.skip(message)
