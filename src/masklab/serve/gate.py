"""One model call at a time per run, waited for in the event loop: a :class:`Gate` per served run.

A request waiting for its run's model holds no worker thread (it awaits a future), so requests to other runs
keep answering however many queue on one; at most :data:`MAX_WAITING` may wait per run, the next is refused
(:class:`Busy`: a 503 with ``Retry-After``). The gate works across event loops and threads (a worker thread
releases it when its model call ends; tests run each request on a loop of its own).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque

MAX_WAITING = 16  # requests that may wait for one run's model; more are answered 503
RETRY_AFTER = 5  # seconds a refused client is told to wait


class Busy(Exception):
    """The run's queue is full."""


class Gate:
    """An async lock with a capped queue: :meth:`acquire` (await), :meth:`release` (any thread), :meth:`locked`."""

    def __init__(self, max_waiting: int = MAX_WAITING) -> None:
        self.max_waiting = max_waiting
        self._mutex = threading.Lock()
        self._busy = False
        self._waiters: deque[asyncio.Future] = deque()

    def locked(self) -> bool:
        return self._busy

    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> None:
        """Wait for the model (:class:`Busy` when :attr:`max_waiting` requests already wait)."""
        with self._mutex:
            if not self._busy:
                self._busy = True
                return
            if len(self._waiters) >= self.max_waiting:
                raise Busy
            turn = asyncio.get_running_loop().create_future()
            self._waiters.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            with self._mutex:
                if turn in self._waiters:  # still queued: leave the queue
                    self._waiters.remove(turn)
                    raise
            if turn.done() and not turn.cancelled():  # the turn came with the cancellation: pass it on
                self.release()
            raise  # (a turn handed to a cancelled future is passed on by _hand_over)

    def release(self) -> None:
        """Hand the model to the next waiter (from any thread), or mark it free."""
        with self._mutex:
            while self._waiters:
                turn = self._waiters.popleft()
                try:
                    turn.get_loop().call_soon_threadsafe(self._hand_over, turn)
                    return
                except RuntimeError:  # its event loop has closed: the next one
                    continue
            self._busy = False

    def _hand_over(self, turn: asyncio.Future) -> None:
        if turn.done():  # its request was cancelled meanwhile
            self.release()
        else:
            turn.set_result(None)
