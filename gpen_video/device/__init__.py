"""How the pipeline's stages use a CUDA device: one stream per stage, events between them, pinned
host buffers, and every host synchronisation counted.

* :class:`~gpen_video.device.lane.DeviceLane` — what the CUDA-touching stages go through:
  uploads from pinned memory, downloads into pinned memory, per-stage streams, events handed from
  one stage to the next (device-side waits, no host sync), and device time per stage measured
  with events.
* :class:`~gpen_video.device.syncs.HostSyncs` — the count of host syncs (device→host copies,
  ``.item()``, ``synchronize``, host waits on events) per stage and kind, which ``gpen-video
  bench`` reports as host syncs per frame.

The budget the pipeline keeps on the restore/composite path: at most one host sync per output
frame (the finished frame's download) plus one per detection batch. On the CPU the lane does the
same work without streams or pinned memory and counts the calls that would be syncs on a GPU, so
the budget is tested without one.
"""

from gpen_video.device.lane import DeviceLane
from gpen_video.device.syncs import HostSyncs

__all__ = ["DeviceLane", "HostSyncs"]
