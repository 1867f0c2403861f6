"""TensorFlow's native start-up chatter kept out of a stage's output; everything else kept.

TensorFlow's C++ core writes notices straight to file descriptor 2 (stderr): the oneDNN and CPU
instruction notices, "could not find cuda drivers" and a `cuInit` error on every CPU machine,
cuDNN/cuFFT/cuBLAS factory registrations, a graph-attribute notice when Keras is newer than the
runtime. Those written before absl's logging starts ignore TF_CPP_MIN_LOG_LEVEL, and that variable
would hide real C++ warnings too. So `quiet_native_logs()` routes descriptor 2 through a pipe read
by a thread that drops the lines matching CHATTER and passes every other byte on unchanged: the
progress bars, the epochs, Python warnings, real errors and tracebacks. One Python warning is
dropped too: Keras's "Your input ran out of data", raised at the end of every dataset of unknown
length although nothing is wrong (fixed upstream by keras-team/keras#23360).

Set BREAKHIS_TF_LOGS=1 to turn the filter off (everything, straight to stderr): for debugging, and
whenever a process may die hard (a segfault can lose lines still in the pipe).
"""

from __future__ import annotations

import atexit
import os
import re
import select
import sys
import threading
import warnings

SWITCH = "BREAKHIS_TF_LOGS"
CHATTER = re.compile(
    rb"All log messages before absl::InitializeLog\(\) is called"
    rb"|oneDNN custom operations are on"
    rb"|Could not find cuda drivers on your machine"
    rb"|This TensorFlow binary is optimized to use available CPU instructions"
    rb"|^To enable the following instructions: .* rebuild TensorFlow"
    rb"|failed call to cuInit"
    rb"|Unable to register cu(DNN|FFT|BLAS) factory"
    rb"|computation placer already registered"
    rb"|TF-TRT Warning: Could not find TensorRT"
    rb"|NodeDef mentions attribute \w+ which is not in the op definition"
)
IDLE_SECONDS = 0.2  # a partial line left this long is passed on (the C++ logger writes whole lines)

_installed = False


def chatter(line: bytes) -> bool:
    return CHATTER.search(line) is not None


def _pump(read_fd: int, out_fd: int) -> None:
    """Copy the pipe to the real stderr, dropping chatter lines. Progress bars (`\\r` without a
    newline) and partial lines that stay incomplete for IDLE_SECONDS pass at once."""
    pending = b""
    while True:
        ready, _, _ = select.select([read_fd], [], [], IDLE_SECONDS)
        chunk = os.read(read_fd, 65536) if ready else None
        if chunk == b"":  # every writer closed: the process is ending
            break
        if chunk is None:  # idle: whatever is pending is not a line being written
            if pending:
                os.write(out_fd, pending)
                pending = b""
            continue
        pending += chunk
        *lines, pending = pending.split(b"\n")
        kept = b"".join(line + b"\n" for line in lines if not chatter(line))
        if b"\r" in pending:  # a progress bar redrawing its line
            kept, pending = kept + pending, b""
        if kept:
            os.write(out_fd, kept)
    if pending and not chatter(pending):
        os.write(out_fd, pending)
    os.close(read_fd)


def quiet_native_logs() -> None:
    """Filter descriptor 2 for the rest of the process (idempotent; off with BREAKHIS_TF_LOGS=1).
    Call it before TensorFlow is imported, from a program's entry point only."""
    global _installed
    if _installed or os.environ.get(SWITCH, "") not in ("", "0"):
        return
    _installed = True
    warnings.filterwarnings("ignore", message="Your input ran out of data", category=UserWarning)
    sys.stderr.flush()
    real_stderr = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    thread = threading.Thread(target=_pump, args=(read_fd, real_stderr), name="stderr-filter", daemon=True)
    thread.start()

    def restore() -> None:  # at exit: stderr back, the pipe drained
        sys.stderr.flush()
        os.dup2(real_stderr, 2)  # closes the pipe's last write end: the pump sees the end
        thread.join(timeout=5)

    atexit.register(restore)
