"""claude-state: crash-proof state for long AI-agent work.

Importing the package is cheap on purpose (the hook's hot path imports it on every tool
call): the public names are resolved lazily by :func:`__getattr__`.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re (~14 ms): never at run time on the hook's path
    from typing import Any

#: The public API: name -> (module, attribute). Everything else is internal and may move.
_LAZY: dict[str, tuple[str, str]] = {
    # state directory and stores
    "StateDir": ("claude_state.storage.layout", "StateDir"),
    "WorkflowStore": ("claude_state.domain.store", "WorkflowStore"),
    "CheckpointStore": ("claude_state.domain.checkpoints", "CheckpointStore"),
    "SessionStore": ("claude_state.domain.sessions", "SessionStore"),
    "BlobStore": ("claude_state.storage.blobs", "BlobStore"),
    # the workflow model and its operations
    "Workflow": ("claude_state.domain.model", "Workflow"),
    "Step": ("claude_state.domain.model", "Step"),
    "parse_definition": ("claude_state.domain.definition", "parse_definition"),
    "ops": ("claude_state.domain", "ops"),
    # durable execution
    "Runner": ("claude_state.engine.runner", "Runner"),
    "StepContext": ("claude_state.engine.runner", "StepContext"),
    # crash recovery
    "recovery": ("claude_state.domain", "recovery"),
    "verify": ("claude_state.domain.verify", "verify"),
    # plugins
    "hookimpl": ("claude_state.plugins", "hookimpl"),
    # errors
    "ClaudeStateError": ("claude_state.errors", "ClaudeStateError"),
    "InvalidInputError": ("claude_state.errors", "InvalidInputError"),
    "NotFoundError": ("claude_state.errors", "NotFoundError"),
    "ConflictError": ("claude_state.errors", "ConflictError"),
    "TransitionError": ("claude_state.errors", "TransitionError"),
    "StaleEpochError": ("claude_state.errors", "StaleEpochError"),
    "IntegrityError": ("claude_state.errors", "IntegrityError"),
    "StorageError": ("claude_state.errors", "StorageError"),
}

__all__ = ["__version__", *_LAZY]


def __dir__() -> list[str]:
    return sorted(__all__)


def __getattr__(name: str) -> "Any":
    if name == "__version__":
        from claude_state.version import package_version

        return package_version()
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'claude_state' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(target[0])
    value = getattr(module, target[1], None)
    if value is None:  # a submodule exposed by name (ops, recovery)
        value = importlib.import_module(f"{target[0]}.{target[1]}")
    globals()[name] = value
    return value
