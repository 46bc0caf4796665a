"""Hyper-parameters of a GPEN ``FullGenerator``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpenConfig:
    """Everything that determines the architecture (and so the checkpoint's keys and shapes).

    The official checkpoints: GPEN-BFR-256 is (256, 1, 0.5); GPEN-BFR-512 is (512, 2, 1.0);
    GPEN-BFR-1024 and -2048 are (1024|2048, 2, 1.0). The rest never changes in released models.
    """

    size: int
    channel_multiplier: int = 2
    narrow: float = 1.0
    style_dim: int = 512
    n_mlp: int = 8
    lr_mlp: float = 0.01
    blur_kernel: tuple[int, ...] = (1, 3, 3, 1)
    isconcat: bool = True

    def __post_init__(self) -> None:
        if self.size < 8 or self.size & (self.size - 1):
            raise ValueError(f"GPEN size must be a power of two >= 8, got {self.size}")
