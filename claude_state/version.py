"""The installed distribution's version, read from its metadata when asked.

One place for the facade's ``claude_state.__version__`` and the CLI's ``--version``
(the CLI must not import the facade, which stands above every layer). Looked up lazily:
``importlib.metadata`` costs start-up time that no other path should pay.
"""

from __future__ import annotations

__all__ = ["package_version"]


def package_version() -> str:
    """``claude-state``'s version, or ``0.0.0+source`` when run from a source tree."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("claude-state")
    except PackageNotFoundError:  # running from a source tree
        return "0.0.0+source"
