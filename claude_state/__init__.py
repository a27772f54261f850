"""claude-state: crash-proof state for long AI-agent work.

Importing the package is cheap on purpose (the hook's hot path imports it on every tool
call): the public names are resolved lazily by :func:`__getattr__`.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re (~14 ms): never at run time on the hook's path
    from typing import Any

__all__ = [
    "ClaudeStateError",
    "__version__",
]

_LAZY: dict[str, tuple[str, str]] = {
    "ClaudeStateError": ("claude_state.errors", "ClaudeStateError"),
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("claude-state")
        except PackageNotFoundError:  # running from a source tree
            return "0.0.0+source"
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'claude_state' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(target[0]), target[1])
    globals()[name] = value
    return value
