"""Scene-linear plates through a display-trained network, with OpenColorIO.

GPEN learnt from display-referred 8-bit faces; an EXR plate holds scene-linear light (ACEScg,
linear Rec.709 …) with highlights above 1.0 and negatives. :class:`DisplayEncoding` converts a
plate **for the network only**:

* input colour space: ``--colorspace NAME`` if given, else the EXR's ``chromaticities``
  (AP1 → ``ACEScg``, AP0 → ``ACES2065-1``, Rec.709 → ``Linear Rec.709 (sRGB)``, when the config
  has those names), else the config's ``scene_linear`` role;
* config: ``$OCIO`` when set, else OpenColorIO's built-in ACES config ``ocio://default``;
* display encoding: the config's ``color_picking`` role (``sRGB Encoded Rec.709 (sRGB)`` in the
  built-in config) — a matrix and a transfer curve, so the way back is the exact mathematical
  inverse (float32 round trip within 3e-5), with no tone mapping that would not invert.

The pipeline sees the display-encoded frame, clipped to [0, 1] and scaled to 16 bits (faces are
detected, cropped and restored there); the restored colour goes back through the inverse and is
blended with the plate **in the plate's own space** (:func:`blend_linear`). Pixels whose display
encoding falls outside [0, 1] in any channel — highlights above the display's white, colours
outside its gamut, negatives — keep their input value, and are counted for the summary.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gpen_video.errors import UsageError

BUILTIN_CONFIG = "ocio://default"
# chromaticities (rx, ry, gx, gy, bx, by, wx, wy) → colour-space name, matched to 1e-3
_PRIMARIES: tuple[tuple[tuple[float, ...], str], ...] = (
    ((0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767), "ACEScg"),
    ((0.7347, 0.2653, 0.0, 1.0, 0.0001, -0.077, 0.32168, 0.33767), "ACES2065-1"),
    ((0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290), "Linear Rec.709 (sRGB)"),
)


def _ocio() -> Any:
    try:
        import PyOpenColorIO
    except ImportError:
        raise UsageError("scene-linear (EXR) plates need OpenColorIO: pip install "
                         "'gpen-video[plates]' (or pip install opencolorio)") from None
    return PyOpenColorIO


def load_config(env: dict[str, str] | None = None) -> tuple[Any, str]:
    """The OCIO config (``$OCIO`` when set, else the built-in ACES config) and its name.

    Raises:
        UsageError: OpenColorIO missing, or ``$OCIO`` names a config it cannot load.
    """
    ocio = _ocio()
    env = os.environ if env is None else env
    where = env.get("OCIO") or BUILTIN_CONFIG
    try:
        return ocio.Config.CreateFromFile(where), where
    except Exception as exc:  # noqa: BLE001 - OCIO raises its own Exception type
        raise UsageError(f"OpenColorIO config {where!r} (from $OCIO) cannot be loaded: {exc}; "
                         "fix the path or unset OCIO to use the built-in ACES config") from None


def colorspace_from_header(header: dict[str, Any]) -> str | None:
    """The colour-space name an EXR's ``chromaticities`` attribute stands for, or None."""
    chroma = header.get("chromaticities")
    if chroma is None:
        return None
    values = np.asarray(chroma, dtype=np.float64).ravel()
    for primaries, name in _PRIMARIES:
        if np.allclose(values, primaries, atol=1e-3):
            return name
    return None


@dataclass
class DisplayEncoding:
    """Scene-linear ``space`` ⇄ the display encoding, both ways (module docstring)."""

    space: str  # input colour space (the plate's)
    display: str  # the display encoding the network sees
    config_name: str
    why: str  # where ``space`` came from, for the summary
    _forward: Any = field(default=None, repr=False)
    _inverse: Any = field(default=None, repr=False)

    @classmethod
    def create(cls, colorspace: str | None, header: dict[str, Any],
               env: dict[str, str] | None = None) -> DisplayEncoding:
        """The encoding for a plate with EXR ``header``; ``colorspace`` (``--colorspace``)
        overrides what the header says.

        Raises:
            UsageError: OpenColorIO missing, a config that does not load, a colour space the
                config does not have (the valid names are listed).
        """
        config, config_name = load_config(env)
        names = [cs.getName() for cs in config.getColorSpaces()]
        if colorspace is not None:
            space, why = colorspace, "--colorspace"
        else:
            space = colorspace_from_header(header)
            why = "the EXR's chromaticities"
            if space is None or space not in names:
                role = config.getColorSpace("scene_linear")
                if role is None:
                    raise UsageError(f"OCIO config {config_name} has no scene_linear role: "
                                     "name the plate's space with --colorspace")
                space, why = role.getName(), "the config's scene_linear role"
        if config.getColorSpace(space) is None:
            raise UsageError(f"--colorspace {space!r} is not in OCIO config {config_name}; "
                             f"choose one of: {', '.join(names)}")
        picking = config.getColorSpace("color_picking")
        display = picking.getName() if picking is not None else "sRGB Encoded Rec.709 (sRGB)"
        if config.getColorSpace(display) is None:
            raise UsageError(f"OCIO config {config_name} has no color_picking role (the "
                             "display encoding GPEN is fed with); add one to the config")
        forward = config.getProcessor(space, display).getDefaultCPUProcessor()
        inverse = config.getProcessor(display, space).getDefaultCPUProcessor()
        return cls(space, display, config_name, why, forward, inverse)

    def to_display(self, rgb: np.ndarray) -> np.ndarray:
        """H×W×3 (any float type) in the plate's space → float32 display encoding (unclipped)."""
        out = np.ascontiguousarray(rgb, dtype=np.float32).copy()
        self._forward.applyRGB(out)
        return out

    def from_display(self, rgb: np.ndarray) -> np.ndarray:
        """The exact inverse of :meth:`to_display` (float32)."""
        out = np.ascontiguousarray(rgb, dtype=np.float32).copy()
        self._inverse.applyRGB(out)
        return out

    def proxy(self, rgb: np.ndarray) -> np.ndarray:
        """The frame the pipeline works on: the display encoding clipped to [0, 1], as full-
        scale uint16 (H×W×3)."""
        encoded = self.to_display(rgb)
        np.clip(encoded, 0.0, 1.0, out=encoded)
        encoded *= 65535.0
        return np.rint(encoded).astype(np.uint16)

    def describe(self) -> str:
        return (f"OCIO {self.config_name}: {self.space} ({self.why}) → {self.display} for the "
                "network, back by the exact inverse; blended in the plate's space")


# a value within one 16-bit code of the display range is representable: the float round trip
# through OCIO puts pixels that sit exactly at 0 or 1 a hair outside (±1e-6)
_EDGE = 1.0 / 65535.0


def representable(encoded: np.ndarray) -> np.ndarray:
    """H×W bool: every channel of the display encoding within [0, 1] (to one 16-bit code)."""
    return np.all((encoded >= -_EDGE) & (encoded <= 1.0 + _EDGE), axis=-1)


def plate_layer(layer: Any, plate: np.ndarray, encoding: DisplayEncoding
                ) -> tuple[Any, int, float]:
    """A frame's :class:`~gpen_video.compose.layer.FaceLayer` (display encoding) turned into
    the plate's space: each piece's colour through the exact inverse, and its coverage set to
    0 where the plate's value cannot be held by the display encoding (those pixels keep their
    input value). The matte and patch passes of a float plate are this layer.

    Returns (the new layer, pixels kept at input value, the largest |value| among them).
    """
    from gpen_video.compose.layer import FaceLayer, LayerPiece

    out = FaceLayer(layer.height, layer.width)
    kept_total, peak = 0, 0.0
    for piece in layer.pieces:
        r = piece.region
        src = plate[r.y0:r.y1, r.x0:r.x1].astype(np.float32)
        inside = representable(encoding.to_display(src))
        kept = (piece.coverage > 0) & ~inside
        if kept.any():
            kept_total += int(kept.sum())
            peak = max(peak, float(np.abs(src[kept]).max()))
        coverage = np.where(inside, piece.coverage, np.float32(0.0)).astype(np.float32)
        out.pieces.append(LayerPiece(r, encoding.from_display(piece.colour), coverage))
    return out, kept_total, peak


def blend_linear(plate: np.ndarray, layer: Any) -> None:
    """Blend a :func:`plate_layer` into ``plate`` (H×W×3 float16/float32, in place): pixels
    with coverage > 0 become ``plate + (colour − plate)·coverage`` computed in float32 and
    stored in the plate's type; every other pixel keeps its exact bits."""
    for piece in layer.pieces:
        r = piece.region
        view = plate[r.y0:r.y1, r.x0:r.x1]
        src = view.astype(np.float32)
        touched = piece.coverage > 0
        mixed = src + (piece.colour - src) * piece.coverage[..., None]
        view[touched] = mixed[touched].astype(plate.dtype)
