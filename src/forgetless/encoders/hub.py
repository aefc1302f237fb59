"""Find model weights already on this machine, without touching the network.

Hub clients retry and wait when the network is down; forgetless looks in the local caches
first and, when the weights are not there, says where to put them instead of hanging.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from forgetless.encoders.base import EncoderNotAvailableError


def hf_cache_dir() -> str:
    """The Hugging Face hub cache (``HF_HUB_CACHE``, else ``HF_HOME/hub``)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    home = os.environ.get("HF_HOME", os.path.join(os.path.expanduser("~"), ".cache", "huggingface"))
    return os.path.join(home, "hub")


def cached_hf_file(repo_id: str, filenames: tuple[str, ...]) -> Path | None:
    """The first of ``filenames`` of hub repo ``repo_id`` in the local cache, else None.

    >>> cached_hf_file("no-such-org/no-such-model-xyz", ("config.json",)) is None
    True
    """
    snapshots = Path(hf_cache_dir()) / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    if not snapshots.is_dir():
        return None
    # Newest snapshot first, so an updated download wins over an old one.
    for snap in sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True):
        for name in filenames:
            if (snap / name).is_file():
                return snap / name
    return None


def local_hf_model(model_id: str, marker: str = "config.json", package: str = "") -> Path:
    """A local folder for ``model_id``: the folder itself if it is a path, else its hub snapshot.

    Raises :class:`EncoderNotAvailableError` saying how to get the weights when neither exists.
    """
    as_path = Path(model_id).expanduser()
    if as_path.is_dir():
        # a saved model has its configuration (a sentence-transformers folder may hold a plain
        # transformers model, which it pools itself)
        if not any((as_path / name).is_file() for name in (marker, "config.json")):
            raise EncoderNotAvailableError(
                f"model folder {model_id} holds no {marker}: not a saved model (save one with "
                "its library's save_pretrained or save into a folder, and pass that folder)"
            )
        return as_path.absolute()  # where it is, whatever folder the program moves to later
    if model_id.startswith((".", "/", "~")):
        raise EncoderNotAvailableError(f"model folder {model_id} does not exist")
    found = cached_hf_file(model_id, (marker,))
    if found is not None:
        return found.parent
    raise EncoderNotAvailableError(
        f"weights for {model_id!r} are not on this machine (looked in {hf_cache_dir()}), and "
        "forgetless never downloads at encode time. On a machine with network run "
        f"`huggingface-cli download {model_id}` (set HF_HOME to share the cache), or save the "
        f"model to a folder and pass its path instead of the id{package}."
    )


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence transformers' per-load progress bar (forgetless shows its own for encoding)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        yield
        return
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
