"""Finding host syncs that bypass :class:`gpen_video.device.DeviceLane` (a test instrument).

On a GPU a host sync is a call that makes the CPU wait for the device: reading a tensor's values
(``.cpu()``, ``.numpy()``, ``.item()``, ``.tolist()``, ``float()``/``int()``/``bool()`` of a
tensor, ``np.asarray(tensor)``) or an operation whose output size depends on the values (boolean
indexing, ``nonzero``, ``masked_select``, ``unique``). On the CPU none of them waits, but the
calls are the same: :class:`StraySyncs` wraps those ``torch.Tensor`` methods while it is active
and records every call made from the watched threads outside a lane's counted syncs.
"""

from __future__ import annotations

import threading
import traceback

import torch

from gpen_video.device.lane import inside_counted_sync

_READS = ("cpu", "numpy", "item", "tolist", "__bool__", "__float__", "__int__", "__index__",
          "__array__", "nonzero", "masked_select", "unique")


def _bool_index(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


class StraySyncs:
    """``with StraySyncs(("gpen-restore", "gpen-paste")) as probe: …`` then ``probe.found``:
    ``(thread, what, where)`` of each uncounted would-be sync, and ``probe.counted``: the reads
    seen inside the lane's counted syncs in those threads (proof that the names matched)."""

    def __init__(self, threads: tuple[str, ...]) -> None:
        self.threads = threads
        self.found: list[tuple[str, str, str]] = []
        self.counted = 0
        self._saved: dict[str, object] = {}

    def _watched(self) -> bool:
        if threading.current_thread().name not in self.threads:
            return False
        if inside_counted_sync():
            self.counted += 1
            return False
        return True

    def _note(self, what: str) -> None:
        where = "".join(traceback.format_stack(limit=4)[:-2]).strip().splitlines()
        self.found.append((threading.current_thread().name, what, " | ".join(where[-2:])))

    def _wrap(self, name: str, check=None):
        original = getattr(torch.Tensor, name)

        def wrapper(tensor, *args, **kwargs):
            if self._watched() and (check is None or check(*args)):
                self._note(name)
            return original(tensor, *args, **kwargs)
        return original, wrapper

    def __enter__(self) -> "StraySyncs":
        wrapped = {name: self._wrap(name) for name in _READS if hasattr(torch.Tensor, name)}
        wrapped["__getitem__"] = self._wrap("__getitem__", _bool_index)
        wrapped["__setitem__"] = self._wrap("__setitem__", lambda index, *_: _bool_index(index))
        for name, (original, wrapper) in wrapped.items():
            self._saved[name] = original
            setattr(torch.Tensor, name, wrapper)
        return self

    def __exit__(self, *exc) -> None:
        for name, original in self._saved.items():
            setattr(torch.Tensor, name, original)
