"""Opening files in a state directory that may have been tampered with.

A state directory lives inside a project, and a project can come from anyone: a cloned
repository can ship ``.claude/state/logs/hook.log`` as a symlink to ``~/.bashrc``, a
``hot.conf`` that is a FIFO (an ``open`` for reading blocks until a writer appears, so
every hook event would hang the agent), or ``sessions`` as a plain file. So every file
the state layer opens is opened here:

* with ``O_NOFOLLOW`` (a symlink in the last component is refused, ``ELOOP``) and
  ``O_NONBLOCK`` (opening a FIFO or a device never waits), then
* checked with ``fstat`` on the open descriptor to be a regular file (no race between
  the check and the use), and refused otherwise;
* the folders of the layout are checked with ``lstat`` to be real directories before
  anything is created in them (:func:`check_dir`), so a symlinked ``sessions`` or
  ``logs`` is refused rather than written through.

A refusal is a :class:`ForeignObjectError`, an :class:`~claude_state.errors.IntegrityError`
of kind ``foreign``: readers treat the object like a damaged file (skip it, report it),
and ``verify`` names it. ``O_NONBLOCK`` has no effect on regular files, so it is left
set.

Hot path module: stdlib only (``os``, ``stat`` is not imported: the ``S_IS*`` tests are
done on the mode bits directly).
"""

import errno as _errno
import os

from claude_state.errors import IntegrityError, StorageError

__all__ = [
    "ForeignObjectError",
    "SAFE_FLAGS",
    "append_line",
    "check_dir",
    "describe_mode",
    "make_dir",
    "open_regular",
    "read_head",
    "read_regular",
]

#: Flags added to every open: never follow a final symlink, never wait on a FIFO or
#: device, never leak the fd into a child.
SAFE_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_FOLLOW_FLAGS = os.O_NONBLOCK | os.O_CLOEXEC
DIR_MODE = 0o700  # as layout.DIR_MODE / FILE_MODE (layout imports this module)
FILE_MODE = 0o600

_S_IFMT = 0o170000
_S_IFREG = 0o100000
_S_IFDIR = 0o040000
_KINDS = {
    0o140000: "socket",
    0o120000: "symlink",
    0o100000: "file",
    0o060000: "block device",
    0o040000: "directory",
    0o020000: "character device",
    0o010000: "fifo",
}


def describe_mode(mode: int) -> str:
    """What kind of object a ``st_mode`` is: ``file``, ``directory``, ``symlink``,
    ``fifo``, ``socket``, ``character device``, ``block device``."""
    return _KINDS.get(mode & _S_IFMT, "unknown object")


class ForeignObjectError(IntegrityError):
    """A path in the state directory is not the regular file (or folder) it must be."""

    def __init__(self, path: str, found: str, wanted: str = "regular file") -> None:
        super().__init__(f"refusing {found} where a {wanted} belongs", path, kind="foreign")
        self.found = found


def open_regular(
    path: str, flags: int = os.O_RDONLY, mode: int = FILE_MODE, *, follow: bool = False
) -> int:
    """``os.open`` *path* safely (see the module doc); a regular file's fd.

    :param follow: follow a symlink (for files outside the state directory that the
        user may link on purpose, such as the project config); a FIFO or device is
        still refused, never waited on.

    :raises FileNotFoundError: passes through (callers map absence themselves).
    :raises ForeignObjectError: a symlink, FIFO, device, socket or directory.
    :raises StorageError: any other failure to open (``ENOSPC``, ``EACCES``...).
    """
    try:
        fd = os.open(path, flags | (_FOLLOW_FLAGS if follow else SAFE_FLAGS), mode)
    except OSError as exc:
        if exc.errno == _errno.ELOOP:  # the last component is a symlink (O_NOFOLLOW)
            raise ForeignObjectError(path, "symlink") from None
        if exc.errno == _errno.ENXIO:  # a FIFO with no reader, opened for writing
            raise ForeignObjectError(path, "fifo") from None
        if exc.errno == _errno.EISDIR:
            raise ForeignObjectError(path, "directory") from None
        if isinstance(exc, FileNotFoundError):
            raise
        raise StorageError(f"could not open {path}: {exc.strerror}", path, exc.errno) from exc
    try:
        st_mode = os.fstat(fd).st_mode
    except BaseException:
        os.close(fd)
        raise
    if st_mode & _S_IFMT != _S_IFREG:
        os.close(fd)
        raise ForeignObjectError(path, describe_mode(st_mode))
    return fd


def read_regular(path: str, *, follow: bool = False) -> bytes:
    """The whole content of the regular file *path* (opened as :func:`open_regular`)."""
    fd = open_regular(path, follow=follow)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_head(path: str, n: int) -> bytes:
    """The first *n* bytes of the regular file *path* (a frame header, cheaply)."""
    fd = open_regular(path)
    try:
        return os.read(fd, n)
    finally:
        os.close(fd)


def check_dir(path: str) -> bool:
    """Whether the folder *path* exists: True for a real directory, False when absent.

    :raises ForeignObjectError: something else is there (a symlink, even to a
        directory, a regular file, a FIFO...).
    """
    try:
        st_mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    if st_mode & _S_IFMT != _S_IFDIR:
        raise ForeignObjectError(path, describe_mode(st_mode), "directory")
    return True


def make_dir(path: str, tighten: bool = True) -> None:
    """Create the folder *path* (0700) unless it exists; refuse a foreign object there;
    with *tighten*, make a folder of ours that is open to others 0700. The parent must
    exist (:raises FileNotFoundError: otherwise)."""
    try:
        try:
            os.mkdir(path, DIR_MODE)
        except FileExistsError:
            st = os.lstat(path)
            if st.st_mode & _S_IFMT != _S_IFDIR:
                raise ForeignObjectError(path, describe_mode(st.st_mode), "directory") from None
            if tighten and st.st_mode & 0o077 and st.st_uid == os.geteuid():
                os.chmod(path, DIR_MODE)
            return
        os.chmod(path, DIR_MODE)  # mkdir honours the umask; make the mode exact
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise StorageError(f"could not create {path}: {exc.strerror}", path, exc.errno) from exc


def append_line(directory: str, name: str, line: bytes, max_size: int = 0) -> bool:
    """Append *line* to ``directory/name`` (a log), creating the file 0600.

    The folder is created with at most its two parents (``<project>/.claude/state/logs``):
    a log never creates a missing project. With *max_size*, a file past it is rotated to
    ``name.1`` first. :returns: whether the line was written (never raises OSError).
    """
    try:
        missing: list[str] = []  # logs/, the state folder, .claude: the project itself must exist
        d = directory
        while not check_dir(d):
            if len(missing) == 3:
                return False
            missing.append(d)
            d = os.path.dirname(d)
        for d in reversed(missing):
            make_dir(d, tighten=not d.endswith(os.sep + ".claude"))
        path = os.path.join(directory, name)
        fd = open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            if max_size and os.fstat(fd).st_size > max_size:
                os.replace(path, path + ".1")  # renames the file we hold: still ours
            os.write(fd, line)
        finally:
            os.close(fd)
        return True
    except (OSError, IntegrityError, StorageError):
        return False
