"""``identity``: returns the crops unchanged (clipped to [0, 1]).

Part of the product for measurement, not restoration: it checks the geometry of the pipeline
(warp → restore → inverse warp → blend must change nothing but resampling) and times everything
but the network (``gpen-video in.mp4 out.mp4 --backend identity``).
"""

from __future__ import annotations

from typing import Any

from gpen_video.backends.base import InputSpec, ModelSource, Restorer, model_crop_size
from gpen_video.options import RestoreOptions


class IdentityRestorer(Restorer):
    """A restorer that restores nothing. Any crop size; numpy or torch in and out.

    Args:
        model: only its crop size is used (a registry model's; default 512).
        restore: ``batch`` (larger batches are split, as a network backend would).
        size: the crop size, overriding the model's.
    """

    name = "identity"
    native = "any"

    def __init__(self, model: ModelSource = None, restore: RestoreOptions | None = None, *,
                 size: int | None = None) -> None:
        restore = restore or RestoreOptions()
        size = size or (model_crop_size(model) if model is not None else None) or 512
        super().__init__(InputSpec(size=size, max_batch=restore.batch))

    def _restore_impl(self, batch: Any) -> Any:
        return batch.clip(0.0, 1.0) if hasattr(batch, "clip") else batch
