"""The pip line that adds an optional part of forgetless: one wording for every message."""

from __future__ import annotations


def install_line(extra: str, package: str | None = None) -> str:
    """What to type to add the optional part ``extra``: from forgetless's own folder (how the
    README installs it), or the one ``package`` that part needs.

    >>> print(install_line("vision", "torch==2.13.0"))
    pip install -e ".[vision]" in forgetless's folder (or pip install torch==2.13.0)
    """
    line = f'pip install -e ".[{extra}]" in forgetless\'s folder'
    return f"{line} (or pip install {package})" if package else line
