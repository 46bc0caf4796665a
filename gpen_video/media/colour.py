"""Colour tags and the YUV ↔ RGB conversion parameters derived from them.

Tags are FFmpeg's enum values (``AVColorRange``, ``AVColorPrimaries``,
``AVColorTransferCharacteristic``, ``AVColorSpace``) as plain ints, exactly as the source
carries them; the sink writes them back unchanged (unspecified stays unspecified).

Conversion: YUV → RGB and back use the *same* matrix and range, so an identity round trip does
not shift colours. The matrix is the source's; when the source does not say, the guess players
make is used (BT.709 for HD and larger, BT.601 below). The range is the source's; unspecified
YUV is limited (MPEG) range. RGB images are always full range. Transfer and primaries are not
converted (tags only): processing sees the source's code values.
"""

from __future__ import annotations

from dataclasses import dataclass

# AVColorSpace → swscale SWS_CS_* constant (the ``src/dst_colorspace`` of PyAV's reformat)
_AVCOL_SPC_TO_SWS = {
    1: 1,  # BT709 → SWS_CS_ITU709
    4: 4,  # FCC
    5: 5,  # BT470BG → SWS_CS_ITU601
    6: 5,  # SMPTE170M → SWS_CS_ITU601 (same matrix)
    7: 7,  # SMPTE240M
    9: 9,  # BT2020_NCL → SWS_CS_BT2020
    10: 9,  # BT2020_CL (approximated by NCL)
}
RANGE_UNSPECIFIED, RANGE_LIMITED, RANGE_FULL = 0, 1, 2
SPC_UNSPECIFIED = 2


@dataclass(frozen=True)
class ColourTags:
    """The four colour tags of a video stream (FFmpeg enum ints; 2 / 0 mean unspecified)."""

    range: int = RANGE_UNSPECIFIED  # AVColorRange: 0 unspecified, 1 limited (tv), 2 full (pc)
    primaries: int = 2  # AVColorPrimaries: 1 bt709, 9 bt2020, 2 unspecified, ...
    transfer: int = 2  # AVColorTransferCharacteristic: 1 bt709, 16 smpte2084 (PQ), 18 HLG, ...
    matrix: int = SPC_UNSPECIFIED  # AVColorSpace: 1 bt709, 5/6 bt601, 9 bt2020nc, 0 rgb, ...

    def sws_matrix(self, height: int) -> int:
        """swscale colourspace constant for conversions (a player's guess when unspecified)."""
        if self.matrix in _AVCOL_SPC_TO_SWS:
            return _AVCOL_SPC_TO_SWS[self.matrix]
        return 1 if height >= 720 else 5

    def sws_range(self, pix_fmt: str) -> int:
        """Range of the YUV data: the tag, or full for ``yuvj*``, else limited."""
        if self.range in (RANGE_LIMITED, RANGE_FULL):
            return self.range
        return RANGE_FULL if pix_fmt.startswith("yuvj") else RANGE_LIMITED


def is_rgb_format(pix_fmt: str) -> bool:
    """True for RGB-family pixel formats (no YUV matrix involved)."""
    return pix_fmt.startswith(("rgb", "bgr", "gbr", "argb", "abgr", "0rgb", "0bgr", "pal8"))
