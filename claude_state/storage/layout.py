"""Where state lives: state-directory resolution and the on-disk layout.

Resolution order is fixed by the CLI contract: ``--state-dir``, ``$CLAUDE_STATE_DIR``,
``<project>/.claude/state`` where project is ``--project``, ``$CLAUDE_PROJECT_DIR``, the
nearest ancestor of the working directory holding ``.claude/`` or ``.git/``, or the
working directory. Folders are 0700, files 0600.

This module is on the hook's hot path: stdlib ``os`` only, no ``pathlib`` objects in the
per-call code (plain strings are cheaper), and no directory is created until needed.
"""

import os

from claude_state.ids import validate_id

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing-only: collections.abc costs start-up time on the hot path
    from collections.abc import Mapping

SUBDIRS = ("workflows", "checkpoints", "sessions", "temp", "blobs", "logs")
DIR_MODE = 0o700
FILE_MODE = 0o600
TEMP_SUFFIX = ".tmp"


def env_flag(name: str, off: str) -> bool:
    """False when the environment variable *name* is set to *off*, else True.

    Read on every lock and every flush, so it reads ``os.environ``'s own dict where it
    has one (POSIX, bytes keys): ``os.environ.get`` runs several Python frames and
    raises and catches a ``KeyError`` for an absent variable, ~2 us a call. Both see
    the same changes (``os.environ[...] =`` and ``del`` update that dict).
    """
    data = _ENVIRON_DATA
    if data is not None:
        return data.get(name.encode()) != off.encode()  # type: ignore[no-any-return]
    return os.environ.get(name) != off


_ENVIRON_DATA = getattr(os.environ, "_data", None) if os.name == "posix" else None


def find_project_dir(cwd: str | None = None) -> str:
    """The nearest ancestor of *cwd* holding ``.claude/`` or ``.git/``, else *cwd*."""
    start = os.path.abspath(cwd or os.getcwd())
    d = start
    while True:
        if os.path.isdir(os.path.join(d, ".claude")) or os.path.exists(os.path.join(d, ".git")):
            return d
        parent = os.path.dirname(d)
        if parent == d:
            return start
        d = parent


class StateDir:
    """A resolved state directory and the paths of everything inside it.

    Path methods validate the ids they are given, so no path is ever built from an
    unchecked id (``../x`` never reaches the file system).
    """

    __slots__ = ("root",)

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.path.abspath(os.fspath(root))

    def __repr__(self) -> str:
        return f"StateDir({self.root!r})"

    def __fspath__(self) -> str:
        return self.root

    @classmethod
    def resolve(
        cls,
        state_dir: str | None = None,
        project: str | None = None,
        *,
        cwd: str | None = None,
        env: "Mapping[str, str] | None" = None,
    ) -> "StateDir":
        """Resolve the state directory by the contract's order (see module docstring)."""
        env = os.environ if env is None else env
        if state_dir:
            return cls(state_dir)
        if env.get("CLAUDE_STATE_DIR"):
            return cls(env["CLAUDE_STATE_DIR"])
        proj = project or env.get("CLAUDE_PROJECT_DIR") or find_project_dir(cwd)
        return cls(os.path.join(proj, ".claude", "state"))

    # -- folders -----------------------------------------------------------------------

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    @property
    def workflows(self) -> str:
        return os.path.join(self.root, "workflows")

    @property
    def checkpoints(self) -> str:
        return os.path.join(self.root, "checkpoints")

    @property
    def sessions(self) -> str:
        return os.path.join(self.root, "sessions")

    @property
    def temp(self) -> str:
        return os.path.join(self.root, "temp")

    @property
    def blobs(self) -> str:
        return os.path.join(self.root, "blobs")

    @property
    def logs(self) -> str:
        return os.path.join(self.root, "logs")

    def exists(self) -> bool:
        return os.path.isdir(self.root)

    def ensure(self, sweep: bool = True) -> "StateDir":
        """Create the layout (0700, idempotent) and sweep orphaned temp files.

        A folder of the layout that is a symlink or not a directory is refused
        (:class:`~claude_state.storage.safeio.ForeignObjectError`), never written
        through; one open to others (0755) is tightened to 0700.
        """
        from claude_state.storage.safeio import make_dir

        _makedirs(self.root, root=True)
        for name in SUBDIRS:
            make_dir(os.path.join(self.root, name))
        from claude_state.storage.gitignore import write_gitignore

        write_gitignore(self.root)
        if sweep:
            sweep_temp(self.temp)
        return self

    def check(self) -> None:
        """Refuse a state directory whose folders are symlinks or not directories
        (read-only commands: nothing is created). :raises ForeignObjectError:"""
        from claude_state.storage.safeio import check_dir

        if os.path.isdir(self.root):  # the folder itself may be a symlink (followed)
            for name in SUBDIRS:
                check_dir(os.path.join(self.root, name))

    # -- files (ids validated here) ------------------------------------------------------

    def workflow_state(self, workflow_id: str) -> str:
        return os.path.join(self.workflows, validate_id(workflow_id, "workflow id") + ".state")

    def workflow_wal(self, workflow_id: str) -> str:
        return os.path.join(self.workflows, validate_id(workflow_id, "workflow id") + ".wal")

    def workflow_lock(self, workflow_id: str) -> str:
        return os.path.join(self.workflows, validate_id(workflow_id, "workflow id") + ".lock")

    def checkpoint_dir(self, workflow_id: str) -> str:
        return os.path.join(self.checkpoints, validate_id(workflow_id, "workflow id"))

    def checkpoint(self, workflow_id: str, checkpoint_id: str) -> str:
        return os.path.join(
            self.checkpoint_dir(workflow_id),
            validate_id(checkpoint_id, "checkpoint id") + ".checkpoint",
        )

    def session_record(self, session_id: str) -> str:
        return os.path.join(self.sessions, validate_id(session_id, "session id") + ".session")

    def session_wal(self, session_id: str) -> str:
        return os.path.join(self.sessions, validate_id(session_id, "session id") + ".wal")

    def session_lock(self, session_id: str) -> str:
        return os.path.join(self.sessions, validate_id(session_id, "session id") + ".lock")

    def lease(self, session_id: str) -> str:
        return os.path.join(self.sessions, validate_id(session_id, "session id") + ".lease")

    def quarantine(self, path: str) -> str:
        """Move *path* (the entry itself, never what a symlink names) to
        ``quarantine/``, where nothing reads it as data but a person can still look:
        the one place damaged or foreign files go (``verify --repair``, recovery).
        :returns: where it went."""
        qdir = os.path.join(self.root, "quarantine")
        _makedirs(qdir)
        dest = os.path.join(qdir, os.path.relpath(path, self.root).replace(os.sep, "__"))
        os.replace(path, dest)
        return dest

    def blob(self, digest: str) -> str:
        if len(digest) != 32 or any(c not in "0123456789abcdef" for c in digest):
            from claude_state.errors import InvalidIdError

            raise InvalidIdError(digest, "blob digest")
        return os.path.join(self.blobs, digest[:2], digest + ".blob")


def _makedirs(path: str, root: bool = False) -> None:
    """Create the folder *path* (0700) and, if missing, its parent (``.claude``).

    Never more: a state directory is ``<project>/.claude/state``, and a hook run with a
    ``$CLAUDE_PROJECT_DIR`` that does not exist must not create the project (the event
    is logged and dropped instead). A foreign object in place of either folder is
    refused; a folder of ours open to others is tightened to 0700.

    :param root: *path* is the state directory itself, which may be a symlink to a
        directory (followed: it is named by the user's settings); every folder inside it
        that is a symlink is refused.
    :raises StorageError: the grandparent does not exist.
    """
    from claude_state.storage.safeio import make_dir

    if root and os.path.islink(path) and os.path.isdir(path):
        return  # the state directory itself may be a symlink the user chose: followed
    try:
        make_dir(path)
    except FileNotFoundError:
        parent = os.path.dirname(path)
        if not os.path.isdir(os.path.dirname(parent)):
            from claude_state.errors import StorageError

            raise StorageError(
                f"cannot create {path}: {os.path.dirname(parent)} does not exist", path
            ) from None
        make_dir(parent, tighten=False)  # the project's .claude: not ours to tighten
        make_dir(path)


def temp_name(temp_dir: str) -> str:
    """A unique temp-file path in *temp_dir* that names its writer's pid.

    The pid lets :func:`sweep_temp` remove only the files of writers that are gone, so a
    sweep never pulls a file out from under a concurrent writer.
    """
    return os.path.join(temp_dir, f"{os.getpid()}.{os.urandom(6).hex()}{TEMP_SUFFIX}")


def sweep_temp(temp_dir: str, max_age: float = 3600.0) -> int:
    """Remove orphaned temp files: those whose writer is dead, or older than *max_age*.

    :returns: how many files were removed.
    """
    import time

    removed = 0
    try:
        names = os.listdir(temp_dir)
    except FileNotFoundError:
        return 0
    now = time.time()
    for name in names:
        path = os.path.join(temp_dir, name)
        pid_text = name.split(".", 1)[0]
        orphan = False
        if pid_text.isdigit():
            pid = int(pid_text)
            if pid != os.getpid():
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    orphan = True
                except PermissionError:
                    pass
        if not orphan:
            try:
                orphan = now - os.stat(path).st_mtime > max_age
            except FileNotFoundError:
                continue
        if orphan:
            try:
                os.unlink(path)
                removed += 1
            except FileNotFoundError:
                pass
    return removed
