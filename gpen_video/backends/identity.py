"""``identity``: returns the crops unchanged (clipped to [0, 1]).

Part of the product for measurement, not restoration: it checks the geometry of the pipeline
(warp → restore → inverse warp → blend must change nothing but resampling) and times everything
but the network (``gpen-video in.mp4 out.mp4 --backend identity``).
"""

from __future__ import annotations

from typing import Any

from gpen_video.backends.base import InputSpec, Restorer


class IdentityRestorer(Restorer):
    """A restorer that restores nothing. Any crop size; numpy or torch in and out."""

    name = "identity"
    native = "any"

    def __init__(self, size: int = 512, max_batch: int | None = None) -> None:
        super().__init__(InputSpec(size=size, max_batch=max_batch))

    def _restore_impl(self, batch: Any) -> Any:
        return batch.clip(0.0, 1.0) if hasattr(batch, "clip") else batch
