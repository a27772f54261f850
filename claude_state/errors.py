"""One error hierarchy for the whole package.

The library raises these and never prints or exits; the CLI maps each class to an exit
code through :data:`EXIT_CODES` (see ``docs/cli.md``), and the hook command logs them and
exits 0 so an internal error never makes the agent fail.

Every error carries its subject as attributes (``path``, ``id``...), so callers can act
on it without parsing the message. This module imports nothing: the hook's hot path
uses it.
"""


class ClaudeStateError(Exception):
    """Root of every error claude-state raises on purpose."""

    #: CLI exit code for this class of error (``docs/cli-contract``: 1 = failed).
    exit_code = 1


# -- usage and input (exit 2) -------------------------------------------------------------


class InvalidInputError(ClaudeStateError):
    """The caller gave something malformed: a bad id, bad JSON, a bad definition."""

    exit_code = 2


class InvalidIdError(InvalidInputError):
    """An identifier does not match ``^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$``."""

    def __init__(self, value: object, what: str = "id") -> None:
        self.value = value
        self.what = what
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        super().__init__(f"invalid {what} {shown}: must match ^[A-Za-z0-9][A-Za-z0-9._-]{{0,127}}$")


class DefinitionError(InvalidInputError):
    """A workflow definition is invalid: unknown dependency, duplicate step, cycle."""

    def __init__(self, message: str, steps: list[str] | None = None) -> None:
        self.steps = list(steps or [])
        super().__init__(message)


class CycleError(DefinitionError):
    """The step dependencies form a cycle; ``steps`` lists the cycle in order."""


class ConfigError(InvalidInputError):
    """A settings or configuration file is malformed."""

    def __init__(self, message: str, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)


# -- not found (exit 3) -------------------------------------------------------------------


class NotFoundError(ClaudeStateError):
    """An unknown workflow, step, checkpoint, session or blob."""

    exit_code = 3

    def __init__(self, kind: str, ident: str, detail: str = "") -> None:
        self.kind = kind
        self.id = ident
        msg = f"{kind} not found: {ident}"
        super().__init__(f"{msg} ({detail})" if detail else msg)


# -- conflicts (exit 4) -------------------------------------------------------------------


class ConflictError(ClaudeStateError):
    """The operation is not allowed in the current state."""

    exit_code = 4


class TransitionError(ConflictError):
    """An invalid workflow or step state transition."""

    def __init__(self, message: str, *, workflow_id: str = "", step_id: str = "") -> None:
        self.workflow_id = workflow_id
        self.step_id = step_id
        super().__init__(message)


class LeaseHeldError(ConflictError):
    """A lease is held by a live process (or one whose heartbeat is still fresh)."""

    def __init__(self, session_id: str, pid: int | None, host: str = "") -> None:
        self.session_id = session_id
        self.pid = pid
        self.host = host
        super().__init__(f"session {session_id} is held by live process {pid} on {host or '?'}")


class StaleEpochError(ConflictError):
    """A writer presented an owner epoch older than the current one (a fenced zombie)."""

    def __init__(self, subject: str, presented: int, current: int) -> None:
        self.subject = subject
        self.presented = presented
        self.current = current
        super().__init__(
            f"{subject}: stale owner epoch {presented} (current is {current}); "
            "this writer was fenced off by a recovery"
        )


class LockTimeoutError(ConflictError):
    """A lock could not be taken within the allowed time."""

    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        super().__init__(f"could not lock {path} within {timeout:g}s")


# -- integrity and I/O (exit 1) -----------------------------------------------------------


class IntegrityError(ClaudeStateError):
    """Stored bytes are damaged: they are reported, never read as data."""

    def __init__(self, message: str, path: str | None = None, kind: str = "corrupt") -> None:
        self.path = path
        self.kind = kind
        super().__init__(f"{path}: {message}" if path else message)


class FrameError(IntegrityError):
    """A framed file failed a check: magic, version, checksum, length, kind."""


class WALError(IntegrityError):
    """A write-ahead log is damaged before its tail, or belongs to another generation."""


class BundleError(IntegrityError):
    """An export bundle is truncated or altered."""


class StorageError(ClaudeStateError):
    """An operating-system error while reading or writing state (disk full, EIO...).

    The previous state is intact when this is raised: writes are atomic.
    """

    def __init__(self, message: str, path: str | None = None, errno: int | None = None) -> None:
        self.path = path
        self.errno = errno
        super().__init__(message)


class PluginError(ClaudeStateError):
    """A plugin failed to load or raised while handling a hook."""

    def __init__(self, message: str, plugin: str = "") -> None:
        self.plugin = plugin
        super().__init__(message)


def exit_code_for(exc: BaseException) -> int:
    """The CLI exit code for *exc*: its class's ``exit_code``, or 1 for anything else."""
    if isinstance(exc, ClaudeStateError):
        return exc.exit_code
    return 1
