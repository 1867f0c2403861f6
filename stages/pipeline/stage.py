"""How every stage and command runs: bad input ends it with one readable message, no traceback.

SIGTERM (what `kill`, a CI timeout or a container stop sends) ends a stage as Ctrl-C does: it
raises `Terminated`, a KeyboardInterrupt, in the main thread, so every cleanup that runs for
Ctrl-C runs for it too (`replaced_folder` removes its `.partial` folder and keeps the previous
output, temporary folders are removed, locks are released); the stage then exits with status 143,
as a process killed by SIGTERM does. A second SIGTERM during that cleanup kills the process at once.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError)
TERMINATED_STATUS = 128 + signal.SIGTERM


class Terminated(KeyboardInterrupt):
    """The process was sent SIGTERM: unwinds like Ctrl-C, so the same cleanup runs."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills without waiting for cleanup
    raise Terminated(f"stopped by {signal.Signals(signum).name}")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the block runs (in the main thread), SIGTERM raises `Terminated`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main; bad input exits with status 1 and one readable message, no traceback;
    SIGTERM cleans up as Ctrl-C does and exits with status 143."""
    try:
        with sigterm_as_interrupt():
            main()
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except Terminated as exc:
        print(f"error: {exc}; nothing of this run was kept, earlier output is unchanged", file=sys.stderr)
        sys.exit(TERMINATED_STATUS)
