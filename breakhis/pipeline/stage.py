"""How every stage and command runs: bad input ends it with one readable message, no traceback.

SIGTERM (what `kill`, a CI timeout or a container stop sends) ends a stage as Ctrl-C does: it
raises `Terminated`, a KeyboardInterrupt, in the main thread, so every cleanup that runs for
Ctrl-C runs for it too (`replaced_folder` removes its `.partial` folder and keeps the previous
output, `output_unit` puts a stage's earlier outputs back, temporary folders are removed, locks
are released); the stage then exits with status 143,
as a process killed by SIGTERM does. A second SIGTERM during that cleanup kills the process at once.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
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


KEPT = "no output of this run was kept, the earlier outputs are unchanged"
INTERRUPTED_STATUS = 128 + signal.SIGINT


# How many items one message lists before "... and N more": every truncated list of the project's
# messages is `listed` or `listed_lines`, so these two numbers are the only ones.
SHOWN = 5  # names or numbers within one line (a warning, a count's examples): enough to recognise them
SHOWN_LINES = 20  # problems one per line, each naming what to fix: enough to fix a batch in one go


def listed(items: Sequence[object], limit: int = SHOWN, separator: str = ", ") -> str:
    """The first `limit` items joined, then how many more there are: what one message lists."""
    more = f"{separator}... and {len(items) - limit} more" if len(items) > limit else ""
    return separator.join(map(str, items[:limit])) + more


def listed_lines(items: Sequence[object]) -> str:
    """The first SHOWN_LINES items one per line (indented, for after `...:\n  `), then how many more."""
    return listed(items, SHOWN_LINES, "\n  ")


def os_problem(exc: OSError) -> str:
    """An operating-system error as one line naming the file: `out.csv: No space left on device`."""
    names = [str(name) for name in (exc.filename, exc.filename2) if name is not None]
    what = exc.strerror or str(exc)
    return f"{' -> '.join(names)}: {what}" if names else what


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main; bad input exits with status 1 and one readable message, no traceback,
    as does a file the system cannot write (a full disk, a read-only folder); Ctrl-C exits with
    status 130 and SIGTERM, which cleans up as Ctrl-C does, with 143."""
    try:
        with sigterm_as_interrupt():
            main()
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except OSError as exc:  # ENOSPC, EROFS, EIO, ...: the outputs' own cleanup has run
        print(f"error: {os_problem(exc)}; {KEPT}", file=sys.stderr)
        sys.exit(1)
    except Terminated as exc:
        print(f"error: {exc}; {KEPT}", file=sys.stderr)
        sys.exit(TERMINATED_STATUS)
    except KeyboardInterrupt:
        print(f"error: interrupted (Ctrl-C); {KEPT}", file=sys.stderr)
        sys.exit(INTERRUPTED_STATUS)
