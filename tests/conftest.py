"""Shared test fixtures: optional data and packages, a session feature cache, and subsets.

Optional things (Debian datasets, model packages) skip a test on a user's machine that lacks
them, with the install line in the reason. In CI (``CI`` set) they fail instead: CI installs
everything, so a skip there would hide a broken install.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import pytest

from forgetless._install import install_line

# Keep in step with the root conftest.py (which makes the doctests follow the same rule).
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def missing(problem: str, install_hint: str) -> NoReturn:
    """Skip the test (fail it in CI) because ``problem``; the reason says ``install_hint``."""
    message = f"{problem}; install it with: {install_hint}"
    if IN_CI:
        pytest.fail(f"CI must have every optional dependency: {message}", pytrace=False)
    pytest.skip(message)


def require(module_or_path: str, install_hint: str) -> Any:
    """Import ``module_or_path`` (or check that path exists) or skip/fail with ``install_hint``.

    Returns the imported module, or the :class:`~pathlib.Path`.
    """
    is_path = module_or_path.startswith(("/", "~", "."))
    if is_path:
        path = Path(module_or_path).expanduser()
        if path.exists():
            return path
        problem = f"{path} is missing"
    else:
        if importlib.util.find_spec(module_or_path.split(".")[0]) is not None:
            return importlib.import_module(module_or_path)
        problem = f"Python package {module_or_path!r} is not installed"
    missing(problem, install_hint)


def require_loader(loader: Callable[[], Any], install_hint: str) -> Any:
    """``loader()``, skipping (or failing in CI) when its data or packages are missing."""
    from forgetless.data import DatasetNotFoundError
    from forgetless.encoders import EncoderNotAvailableError

    try:
        return loader()
    except (DatasetNotFoundError, EncoderNotAvailableError, ImportError) as exc:
        if IN_CI:
            pytest.fail(f"CI must have every optional dependency: {exc}", pytrace=False)
        pytest.skip(f"{exc} ({install_hint})")


FONTS_HINT = "apt-get install -y $(cat .ci/latin-font-packages.txt)"
VISION_HINT = install_line("vision")
TEXT_HINT = install_line("text")


@pytest.fixture(scope="session")
def feature_cache(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One feature cache for the whole run: each subset is encoded once across all tests."""
    from forgetless.cache import FeatureCache

    return FeatureCache(tmp_path_factory.mktemp("feature-cache"))


@pytest.fixture(scope="session")
def fashion_mnist() -> Any:
    from forgetless.data import load_dataset

    return require_loader(
        lambda: load_dataset("fashion-mnist"), "apt-get install -y dataset-fashion-mnist"
    )


@pytest.fixture(scope="session")
def openclipart() -> Any:
    from forgetless.data import load_dataset

    return require_loader(lambda: load_dataset("openclipart"), "apt-get install -y openclipart-png")


@pytest.fixture(scope="session")
def wordnet() -> Any:
    from forgetless.data import load_dataset

    return require_loader(lambda: load_dataset("wordnet"), "apt-get install -y wordnet-base")


@pytest.fixture(scope="session")
def fortunes() -> Any:
    from forgetless.data import load_dataset

    return require_loader(lambda: load_dataset("fortunes"), "apt-get install -y fortunes")


@pytest.fixture(scope="session")
def latin_glyphs() -> Any:
    from forgetless.data import load_dataset

    return require_loader(lambda: load_dataset("latin-glyphs"), FONTS_HINT)


@pytest.fixture(scope="session")
def efficientnet() -> Any:
    """EfficientNet-Lite0 at the resolution the accuracy floors were measured at."""
    from forgetless.encoders import load_encoder

    require("efficientnet_lite_pytorch", VISION_HINT)
    return require_loader(lambda: load_encoder("efficientnet-lite0", image_size=112), VISION_HINT)


@pytest.fixture(scope="session")
def opennsfw() -> Any:
    from forgetless.encoders import load_encoder

    require("onnxruntime", VISION_HINT)
    return require_loader(lambda: load_encoder("opennsfw-resnet50"), VISION_HINT)


@pytest.fixture(scope="session")
def minilm() -> Any:
    from forgetless.encoders import load_encoder

    require("sentence_transformers", TEXT_HINT)
    return require_loader(lambda: load_encoder("minilm"), TEXT_HINT)
