"""What every command shares: the resolved state directory and one way to print results."""

from __future__ import annotations

import argparse
import sys
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from claude_state.storage.layout import StateDir


class Context:
    """Per-invocation context handed to every command's ``run(args, ctx)``."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.json: bool = bool(args.json)

    @cached_property
    def state(self) -> StateDir:
        """The resolved state directory, created (0700) on first use."""
        from claude_state.storage.layout import StateDir

        sd = StateDir.resolve(state_dir=self.args.state_dir, project=self.args.project)
        sd.ensure()
        return sd

    def state_if_exists(self, check: bool = True) -> StateDir:
        """The resolved state directory without creating it (for read-only commands).

        :param check: refuse folders of the layout that are symlinks or not
            directories (``verify`` names them instead).
        """
        from claude_state.storage.layout import StateDir

        sd = StateDir.resolve(state_dir=self.args.state_dir, project=self.args.project)
        if check:
            sd.check()
        return sd

    def emit(self, data: Any, human: str | None = None) -> None:
        """Print *data* as one JSON document under ``--json``, else *human* (or a rendering)."""
        if self.json:
            import orjson

            sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        else:
            if human is None:
                import orjson

                human = orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()
            if human:
                sys.stdout.write(human.rstrip("\n") + "\n")
        sys.stdout.flush()

    @property
    def tty(self) -> bool:
        return sys.stdout.isatty()

    def progress(self, total: int, label: str) -> Progress:
        """A progress line on stderr, shown only when stderr is a terminal and not --json."""
        return Progress(total, label, enabled=(not self.json) and sys.stderr.isatty())


class Progress:
    """A minimal progress indicator for long work (verify, gc, export)."""

    def __init__(self, total: int, label: str, enabled: bool) -> None:
        self.total = max(total, 1)
        self.label = label
        self.enabled = enabled
        self.done = 0

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.enabled and (self.done == self.total or self.done % 25 == 0):
            pct = 100 * self.done // self.total
            sys.stderr.write(f"\r{self.label}: {self.done}/{self.total} ({pct}%)")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()
