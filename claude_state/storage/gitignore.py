"""``<state>/.gitignore``: keep the state directory out of the project's git history.

``.claude/state/`` holds prompts, tool inputs and outputs (redacted, but still the
user's work) and machine-specific leases; ``.claude/`` itself is usually committed (its
``settings.json`` is shared). A ``.gitignore`` holding ``*`` inside the state directory
ignores everything in it, itself included, without touching the user's own ignore files.

Written by ``claude-state init``, whenever the layout is created, and by the first hook
of a project (which creates the folders itself): stdlib only, so the hook's hot path can
call it.
"""

import os

__all__ = ["GITIGNORE", "CONTENT", "write_gitignore"]

GITIGNORE = ".gitignore"
CONTENT = b"*\n"


def write_gitignore(root: str) -> bool:
    """Create ``<root>/.gitignore`` containing ``*`` (mode 0600); True when created now.

    An existing file is left as it is (the user may have written their own), and so is
    anything else at that name: ``O_CREAT | O_EXCL`` never follows a symlink (a planted
    link to a file elsewhere is not written through) and fails on any existing entry.
    Never raises for an ``OSError``: a missing ignore file must not stop the state from
    being recorded.
    """
    path = os.path.join(root, GITIGNORE)
    if os.path.lexists(path):
        return False  # the common case: one lstat, no open (and no write attempted)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError:
        return False
    try:
        os.write(fd, CONTENT)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True
