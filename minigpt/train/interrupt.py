"""Stop a training run cleanly on Ctrl-C (SIGINT) or `kill` (SIGTERM).

The default reaction to either signal kills the process wherever it is, possibly halfway through
an optimizer step or a checkpoint write. `StopRequest` replaces it while training: the signal only
sets a flag, the loop finishes its current step, saves, and exits normally. A second signal
restores the default behaviour first, so an impatient second Ctrl-C still kills at once.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Context manager: `requested` turns True once SIGINT or SIGTERM arrives."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        self._restore()  # the next signal gets the default behaviour

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def __enter__(self) -> StopRequest:
        # signal handlers can only be installed from the main thread (tests may run elsewhere)
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._restore()
