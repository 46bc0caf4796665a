"""Signals held back during steps that belong together
(:func:`gpen_video.shutdown.deferred_signals`): raised when the block ends, not inside it."""

from __future__ import annotations

import os
import signal
import time

import pytest

from gpen_video.media import paths
from gpen_video.shutdown import (SignalGuard, Terminated, deferred_signals, remove_temps,
                                  tracked_temps)


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


@pytest.mark.parametrize("create, call", [(paths.temp_file_for, "open"),
                                          (paths.temp_dir_for, "mkdir")])
def test_a_signal_as_a_partial_is_created_finds_it_registered(tmp_path, monkeypatch, create,
                                                              call) -> None:
    """SIGTERM right after the partial appears on disk, before it is locked and registered: the
    stop must come after the registration, or no exit path would remove the file."""
    real, calls = getattr(os, call), []

    def then_signal(*args, **kwargs):
        result = real(*args, **kwargs)
        if not calls:
            calls.append(os.fspath(args[0]))
            _signal_self_then([])
        return result

    monkeypatch.setattr(os, call, then_signal)
    with SignalGuard(grace=60.0):
        with pytest.raises(Terminated):
            create(tmp_path / "out.mov")
    monkeypatch.undo()
    (partial,) = [p for p in tmp_path.iterdir()]
    assert calls == [os.fspath(partial)]
    assert partial in tracked_temps()  # removed by any exit (remove_temps)
    remove_temps()
    assert list(tmp_path.iterdir()) == []
