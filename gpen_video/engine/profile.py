"""The TensorRT optimisation profile: which batch sizes an engine accepts and is tuned for.

Default ``min 1, opt 8, max 32``. ``--batch B`` (faces per forward pass, what the pipeline sends
most of the time) becomes ``opt``; ``--max-batch M`` becomes ``max``; ``min`` is always 1 so a
last, partial batch runs on the same engine. Larger batches are split by the restorer.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpen_video.errors import UsageError

DEFAULT_MIN, DEFAULT_OPT, DEFAULT_MAX = 1, 8, 32
LIMIT = 1024  # a sanity bound: 1024 faces of 512² fp32 are 3 GB of input alone


@dataclass(frozen=True)
class Profile:
    """Batch sizes of one optimisation profile: ``1 ≤ min ≤ opt ≤ max``."""

    min: int = DEFAULT_MIN
    opt: int = DEFAULT_OPT
    max: int = DEFAULT_MAX

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max <= LIMIT:
            raise UsageError(f"batch profile min {self.min}, opt {self.opt}, max {self.max}: "
                             f"need 1 ≤ min ≤ opt ≤ max ≤ {LIMIT}")

    def shapes(self, size: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) input shapes ``N×3×S×S`` for a ``size`` px model."""
        return tuple((n, 3, size, size) for n in (self.min, self.opt, self.max))  # type: ignore

    def tag(self) -> str:
        """``b1-8-32``: for file names."""
        return f"b{self.min}-{self.opt}-{self.max}"


def select_profile(batch: int | None = None, max_batch: int | None = None) -> Profile:
    """The profile for ``--batch``/``--max-batch`` (either may be None: the defaults).

    ``opt = batch`` (default 8, but never above ``max``), ``max = max_batch`` (default
    ``max(32, batch)``), ``min = 1``.

    Raises:
        UsageError: a value below 1 or above the limit, or ``batch > max_batch``.
    """
    for flag, value in (("--batch", batch), ("--max-batch", max_batch)):
        if value is not None and not 1 <= int(value) <= LIMIT:
            raise UsageError(f"{flag} {value}: choose 1 … {LIMIT}")
    if batch is not None and max_batch is not None and batch > max_batch:
        raise UsageError(f"--batch {batch} is larger than --max-batch {max_batch}: the engine "
                         "could not take a full batch; raise --max-batch or lower --batch")
    if max_batch is None:
        top = max(DEFAULT_MAX, batch or 0)
    else:
        top = int(max_batch)
    opt = min(int(batch) if batch is not None else DEFAULT_OPT, top)
    return Profile(min=DEFAULT_MIN, opt=opt, max=top)


def profile_for_restore(batch: int | None, max_batch: int | None) -> Profile:
    """The profile for a restorer's options: like :func:`select_profile`, but a ``batch`` above
    ``max_batch`` is clamped (the restorer splits batches) instead of refused."""
    if batch is not None and max_batch is not None:
        batch = min(batch, max_batch)
    return select_profile(batch, max_batch)
