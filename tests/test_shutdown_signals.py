"""Signals held back while the main thread sets up a native object
(:func:`gpen_video.shutdown.deferred_signals`): raised when the block ends, not inside it."""

from __future__ import annotations

import os
import signal
import time

import pytest

from gpen_video.shutdown import SignalGuard, Terminated, deferred_signals


def _signal_self_then(steps: list[str]) -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.05)  # the handler runs here, between two bytecodes of the main thread
    steps.append("after the signal")


def test_a_signal_inside_the_block_is_raised_when_the_block_ends() -> None:
    steps: list[str] = []
    with SignalGuard(grace=60.0) as guard:
        with pytest.raises(Terminated) as raised:
            with deferred_signals():
                _signal_self_then(steps)
                with deferred_signals():  # nested: still held until the outer block ends
                    steps.append("nested block")
                steps.append("end of the outer block")
        assert guard.received == signal.SIGTERM
    assert raised.value.exit_code == 143
    assert steps == ["after the signal", "nested block", "end of the outer block"]


def test_outside_the_block_the_signal_is_raised_at_once() -> None:
    steps: list[str] = []
    with SignalGuard(grace=60.0):
        with pytest.raises(Terminated):
            _signal_self_then(steps)
    assert steps == []
