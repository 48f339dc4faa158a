"""Ctrl-C during a collection: stop starting rollouts, keep what finished, exit 130 at once.

Why a hard exit at the end: a local model generates in a worker thread that
cannot be interrupted, and both asyncio (`asyncio.run` joins its default
executor) and the interpreter (it joins `concurrent.futures` workers at exit)
would wait for that thread, possibly for minutes. Every finished rollout is
already fsync'd to the run directory when it ends, and abandoned rollouts have
closed their sandboxes, so nothing is lost by not waiting.

The first SIGINT stops: no new rollouts start, and those in flight are either
abandoned (default) or, with ``drain``, finished and written. A second SIGINT
abandons the ones being drained; a third exits on the spot.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

T = TypeVar("T")

INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, what shells report for a Ctrl-C'd program


class Interrupted(Exception):
    """Raised by the runner when it stopped before every rollout ran; `summary` says what finished."""

    def __init__(self, summary: object, message: str = "interrupted") -> None:
        super().__init__(message)
        self.summary = summary


class StopSignal:
    """What the runner polls: `stopping` (start nothing new) and `abandoning` (drop what is in flight)."""

    def __init__(self, *, drain: bool = False) -> None:
        self.drain = drain
        self.stopping = asyncio.Event()
        self.abandoning = asyncio.Event()
        self.requests = 0

    def request(self) -> None:
        """One more stop request (a Ctrl-C): stop, then abandon, then exit."""
        self.requests += 1
        if self.requests >= 3 or (self.abandoning.is_set() and self.requests >= 2):
            hard_exit(INTERRUPTED_EXIT_CODE)
        self.stopping.set()
        if not self.drain or self.requests >= 2:
            self.abandoning.set()

    @property
    def requested(self) -> bool:
        return self.stopping.is_set()


def hard_exit(code: int) -> NoReturn:
    """Exit now, without joining worker threads (see the module docstring)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


async def run_stoppable(make: Callable[[StopSignal], Awaitable[T]], *, drain: bool = False,
                        on_stop: Callable[[Interrupted], None] | None = None) -> T:
    """Run `make(stop)` with SIGINT wired to `stop`; after an interrupted run, `on_stop` then exit 130.

    `make` should return normally once stopped (the runner does, raising
    `Interrupted` after writing what finished); the exit happens here, inside
    the event loop, before `asyncio.run` could wait for busy worker threads.
    """
    stop = StopSignal(drain=drain)
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, stop.request)
        installed = True
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
        installed = False
    try:
        return await make(stop)
    except Interrupted as exc:
        if on_stop is not None:
            on_stop(exc)
        hard_exit(INTERRUPTED_EXIT_CODE)
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGINT)
