"""GPEN's ``FullGenerator``, written as a ladder of small modules in plain PyTorch.

The network is the one of Yang et al. (CVPR 2021) and of the official checkpoints: its state dict
has exactly the official keys and shapes, so ``load_state_dict(strict=True)`` takes an official
``.pth`` file as it is (see :mod:`gpen_video.models.load`).

Two things differ from the official code, neither of which changes the result:

* No custom CUDA ops. Fused leaky-ReLU and ``upfirdn2d`` (blur, upsample) are written with
  ordinary torch ops, so the same module runs on CPU and GPU and exports to ONNX.
* The modulated convolution is *unfused*. The official code folds each sample's style into its
  own copy of the weight and runs one grouped convolution with ``groups = batch``, which pins
  the batch size in ONNX and TensorRT. Here the input channels are scaled by the style, the
  convolution uses the static weight, and the output channels are scaled by the per-sample
  demodulation factor. That is the same arithmetic (convolution is linear in each input
  channel), so one implementation serves torch, ONNX (dynamic batch) and TensorRT.

Conventions of the whole module: tensors are NCHW; images are RGB in [-1, 1] (see
:mod:`gpen_video.models.io` for the conversion from pixels); N, the batch, is free everywhere;
the forward pass is deterministic (GPEN replaces StyleGAN2's random noise with encoder features).

Shape comments use N for the batch, C for channels, H×W for the spatial size, D for style_dim.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gpen_video.models.config import GpenConfig

SQRT2 = math.sqrt(2.0)
LRELU_SLOPE = 0.2


# ---------------------------------------------------------------------------------------------
# Plain-torch replacements for the official custom ops
# ---------------------------------------------------------------------------------------------


def fused_leaky_relu(x: Tensor, bias: Tensor) -> Tensor:
    """``√2 · leaky_relu(x + bias, 0.2)``, bias broadcast over channels (dim 1).

    Args:
        x: N×C or N×C×H×W.
        bias: C.
    """
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return F.leaky_relu(x + bias.view(shape), LRELU_SLOPE) * SQRT2


def make_blur_kernel(taps: tuple[int, ...] | list[int], gain: float = 1.0) -> Tensor:
    """Separable FIR kernel (outer product of ``taps`` with itself), summing to ``gain``.

    ``(1, 3, 3, 1)`` gives the 4×4 binomial kernel that GPEN stores in its checkpoints (gain 1
    for blurs before a downsampling conv, 4 = factor² after a 2× upsampling).
    """
    k = torch.tensor(taps, dtype=torch.float32)
    k2d = k[:, None] * k[None, :]
    return k2d * (gain / k2d.sum())


def upfirdn2d(
    x: Tensor,  # N×C×H×W
    kernel: Tensor,  # K×K
    channels: int,  # C, static (ONNX needs the depthwise weight's shape at export)
    up: int = 1,
    down: int = 1,
    pad: tuple[int, int] = (0, 0),
) -> Tensor:
    """Upsample by zero insertion, pad, filter with ``kernel`` (true convolution), subsample.

    StyleGAN2's ``upfirdn2d`` with equal factors and padding on both axes: ``pad = (before,
    after)`` applies to H and W alike (negative values crop). The filter runs per channel
    (depthwise), so no batch dimension is folded into groups.

    The cases GPEN uses go through single convolutions, whose output sizes ONNX shape inference
    can see: symmetric padding is the conv's own ``padding``; 2× upsampling is one transposed
    conv (stride ``up``, the unflipped kernel, padding K−1−before), which is the same sum as
    zero-stuff → pad → convolve. Anything else takes :func:`upfirdn2d_reference`.

    Returns:
        N×C×H'×W' with H' = (H·up + before + after − K) // down + 1.
    """
    before, after = pad
    k = kernel.shape[-1]
    if up == 1 and before == after >= 0:
        weight = torch.flip(kernel, (0, 1)).to(x.dtype)[None, None].expand(channels, 1, k, k)
        return F.conv2d(x, weight, stride=down, padding=before, groups=channels)
    out_pad = up + after - before - 1
    if up > 1 and down == 1 and 0 <= k - 1 - before and 0 <= out_pad < up:
        weight = kernel.to(x.dtype)[None, None].expand(channels, 1, k, k)
        return F.conv_transpose2d(x, weight, stride=up, padding=k - 1 - before,
                                  output_padding=out_pad, groups=channels)
    return upfirdn2d_reference(x, kernel, channels, up, down, pad)


def upfirdn2d_reference(
    x: Tensor,  # N×C×H×W
    kernel: Tensor,  # K×K
    channels: int,
    up: int = 1,
    down: int = 1,
    pad: tuple[int, int] = (0, 0),
) -> Tensor:
    """:func:`upfirdn2d` spelled out step by step (any factors and padding)."""
    if up > 1:
        # Put every sample at the top-left of an up×up cell of zeros.
        n, c, h, w = x.shape
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, (0, up - 1, 0, 0, 0, up - 1))
        x = x.reshape(n, c, h * up, w * up)
    before, after = pad
    x = F.pad(x, (before, after, before, after))  # negative values crop
    # conv2d is a correlation; flipping the kernel makes it the convolution upfirdn2d defines.
    weight = torch.flip(kernel, (0, 1)).to(x.dtype)
    weight = weight[None, None].expand(channels, 1, kernel.shape[0], kernel.shape[1])
    return F.conv2d(x, weight, stride=down, groups=channels)


class Blur(nn.Module):
    """FIR low-pass (``upfirdn2d`` without resampling). Buffer ``kernel`` is in checkpoints."""

    def __init__(
        self, taps: tuple[int, ...], pad: tuple[int, int], channels: int, gain: float = 1.0
    ) -> None:
        super().__init__()
        self.register_buffer("kernel", make_blur_kernel(taps, gain))  # 4×4, persistent
        self.pad = pad
        self.channels = channels

    def forward(self, x: Tensor) -> Tensor:  # N×C×H×W → N×C×H'×W'
        return upfirdn2d(x, self.kernel, self.channels, pad=self.pad)


class Upsample(nn.Module):
    """2× FIR upsampling of the RGB skip path: up 2, pad (2, 1), kernel × 4."""

    def __init__(self, taps: tuple[int, ...], channels: int = 3, factor: int = 2) -> None:
        super().__init__()
        self.register_buffer("kernel", make_blur_kernel(taps, factor**2))  # persistent
        self.factor = factor
        self.channels = channels
        p = len(taps) - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: Tensor) -> Tensor:  # N×C×H×W → N×C×2H×2W
        return upfirdn2d(x, self.kernel, self.channels, up=self.factor, pad=self.pad)


# ---------------------------------------------------------------------------------------------
# Equalized-learning-rate layers
# ---------------------------------------------------------------------------------------------


class FusedLeakyReLU(nn.Module):
    """Bias then √2-scaled leaky-ReLU. Parameter ``bias``: C."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:  # N×C(×H×W) → same
        return fused_leaky_relu(x, self.bias)


class EqualConv2d(nn.Module):
    """Conv2d whose weight is scaled at run time by 1/sqrt(in·k²) (equalized learning rate)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.stride = stride
        self.padding = padding

    def forward(self, x: Tensor) -> Tensor:  # N×Cin×H×W → N×Cout×H'×W'
        return F.conv2d(x, self.weight * self.scale, self.bias, self.stride, self.padding)


class EqualLinear(nn.Module):
    """Linear layer with equalized learning rate: weight·lr_mul/sqrt(in), bias·lr_mul.

    With ``activate`` the bias goes into a fused leaky-ReLU instead of the matmul (same keys).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activate: bool = False,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_features)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: Tensor) -> Tensor:  # N×in → N×out
        if self.activate:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


def conv_layer(
    in_channels: int, out_channels: int, kernel_size: int, downsample: bool, blur: tuple[int, ...]
) -> nn.Sequential:
    """Encoder layer: [blur (pad 2),] equalized conv (no bias), fused leaky-ReLU.

    A ``Sequential`` so that the checkpoint keys read ``0.kernel``, ``1.weight``, ``2.bias``
    (or ``0.weight``, ``1.bias`` without the blur), as in the official files.
    Downsampling: blur then a 3×3 stride-2 unpadded conv, H → H/2.
    """
    layers: list[nn.Module] = []
    if downsample:
        p = (len(blur) - 2) + (kernel_size - 1)
        layers.append(Blur(blur, pad=((p + 1) // 2, p // 2), channels=in_channels))
        layers.append(EqualConv2d(in_channels, out_channels, kernel_size, stride=2, bias=False))
    else:
        layers.append(
            EqualConv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        )
    layers.append(FusedLeakyReLU(out_channels))
    return nn.Sequential(*layers)


class PixelNorm(nn.Module):
    """Normalise each vector to unit mean square over dim 1."""

    def forward(self, x: Tensor) -> Tensor:  # N×D → N×D
        return x * torch.rsqrt(torch.mean(x * x, dim=1, keepdim=True) + 1e-8)


class MappingNetwork(nn.Sequential):
    """z → w: PixelNorm then ``n_mlp`` equalized linears (lr_mul ``lr_mlp``, fused lrelu).

    Keys ``style.1.weight`` … ``style.{n_mlp}.bias`` (index 0 is the parameter-free PixelNorm).
    """

    def __init__(self, style_dim: int, n_mlp: int, lr_mlp: float) -> None:
        layers: list[nn.Module] = [PixelNorm()]
        layers += [EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activate=True)
                   for _ in range(n_mlp)]
        super().__init__(*layers)


# ---------------------------------------------------------------------------------------------
# Style-modulated layers
# ---------------------------------------------------------------------------------------------


class ModulatedConv2d(nn.Module):
    """StyleGAN2 modulated convolution in the unfused, batch-free form.

    For sample n with style s = modulation(w) (one scale per input channel) the official layer
    convolves with W'[n,o,i] = W[o,i]·s[n,i]·d[n,o], d[n,o] = rsqrt(Σ_i,k (W[o,i,k]·s[n,i])² + 1e-8).
    Because convolution is linear, that equals: x·s (per input channel) → conv with the static
    W → ·d (per output channel). Upsampling: transposed conv, stride 2 (H → 2H+1), then a blur
    with the kernel × 4, pad (1, 1) (→ 2H); the demodulation commutes with the blur.

    Parameters: ``weight`` 1×Cout×Cin×k×k (official layout), ``modulation`` (D → Cin, bias 1),
    and with ``upsample`` a ``blur.kernel`` buffer.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
        blur: tuple[int, ...] = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        self.upsample = upsample
        if upsample:  # registered first, so the state dict lists keys in the official order
            factor = 2
            p = (len(blur) - factor) - (kernel_size - 1)
            self.blur = Blur(blur, pad=((p + 1) // 2 + factor - 1, p // 2 + 1),
                             channels=out_channels, gain=factor**2)
        self.weight = nn.Parameter(
            torch.randn(1, out_channels, in_channels, kernel_size, kernel_size)
        )
        self.modulation = EqualLinear(style_dim, in_channels, bias_init=1.0)
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.demodulate = demodulate
        self.padding = kernel_size // 2

    def forward(
        self,
        x: Tensor,  # N×Cin×H×W
        w: Tensor,  # N×D
    ) -> Tensor:  # N×Cout×H×W, or N×Cout×2H×2W with upsample
        style = self.modulation(w)  # N×Cin
        weight = self.weight[0] * self.scale  # Cout×Cin×k×k, shared by the whole batch
        x = x * style[:, :, None, None].to(x.dtype)
        if self.upsample:
            # conv_transpose2d wants Cin×Cout×k×k; the official grouped code uses the same view.
            out = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
            out = self.blur(out)
        else:
            out = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:
            out = out * self.demodulation(weight, style)[:, :, None, None]
        return out

    @staticmethod
    def demodulation(
        weight: Tensor,  # Cout×Cin×k×k, already scaled
        style: Tensor,  # N×Cin
    ) -> Tensor:  # N×Cout, same dtype as weight
        # FP16 guard: Σ (W·s)² overflows half precision for large styles; sum in fp32.
        w2 = weight.float().square().sum(dim=(2, 3))  # Cout×Cin
        d = torch.rsqrt(style.float().square() @ w2.t() + 1e-8)
        return d.to(weight.dtype)


class FeatureInjection(nn.Module):
    """Concatenates (or adds) the encoder feature, scaled by a learned scalar ``weight``.

    This is where StyleGAN2 injects random noise; GPEN feeds the encoder feature of the same
    resolution instead, which makes the network deterministic. The parameter keeps the official
    key ``noise.weight`` (shape 1).
    """

    def __init__(self, concat: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.concat = concat

    def forward(
        self,
        x: Tensor,  # N×C×H×W
        feature: Tensor,  # N×C×H×W from the encoder
    ) -> Tensor:  # N×2C×H×W (concat) or N×C×H×W
        if self.concat:
            return torch.cat((x, self.weight * feature), dim=1)
        return x + self.weight * feature


class StyledConv(nn.Module):
    """Modulated conv, encoder-feature injection, fused leaky-ReLU over the joined channels."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        style_dim: int,
        upsample: bool = False,
        blur: tuple[int, ...] = (1, 3, 3, 1),
        concat: bool = True,
    ) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, style_dim, upsample=upsample,
                                    blur=blur)
        self.noise = FeatureInjection(concat)  # official key name
        self.activate = FusedLeakyReLU(out_channels * (2 if concat else 1))

    def forward(
        self,
        x: Tensor,  # N×Cin×H×W
        w: Tensor,  # N×D
        feature: Tensor,  # N×Cout×H'×W', encoder output at the output resolution
    ) -> Tensor:  # N×(2·)Cout×H'×W'
        return self.activate(self.noise(self.conv(x, w), feature))


class ToRGB(nn.Module):
    """1×1 modulated conv (no demodulation) to RGB, plus bias, plus the upsampled skip."""

    def __init__(self, in_channels: int, style_dim: int, upsample: bool = True,
                 blur: tuple[int, ...] = (1, 3, 3, 1)) -> None:
        super().__init__()
        self.upsample = Upsample(blur) if upsample else None
        self.conv = ModulatedConv2d(in_channels, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(
        self,
        x: Tensor,  # N×C×H×W
        w: Tensor,  # N×D
        skip: Tensor | None = None,  # N×3×(H/2)×(W/2), RGB so far
    ) -> Tensor:  # N×3×H×W
        out = self.conv(x, w) + self.bias
        if skip is not None:
            assert self.upsample is not None, "the first ToRGB takes no skip"
            out = out + self.upsample(skip)
        return out


class ConstantInput(nn.Module):
    """The learned 4×4 starting map, ``input``: 1×C×4×4, broadcast to the batch."""

    def __init__(self, channels: int, size: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch_like: Tensor) -> Tensor:  # any N×… → N×C×4×4
        return self.input.expand(batch_like.shape[0], -1, -1, -1)


# ---------------------------------------------------------------------------------------------
# Decoder, encoder and the full generator
# ---------------------------------------------------------------------------------------------


def gpen_channels(config: GpenConfig) -> dict[int, int]:
    """Channels per resolution: int(512·narrow) up to 32, then int(b·cm·narrow), b = 256 … 8."""
    channels = {r: int(512 * config.narrow) for r in (4, 8, 16, 32)}
    base = 256
    r = 64
    while r <= max(config.size, 64):
        channels[r] = int(base * config.channel_multiplier * config.narrow)
        base //= 2
        r *= 2
    return channels


class StyleDecoder(nn.Module):
    """The StyleGAN2 synthesis network of GPEN (the checkpoint's ``generator.`` prefix).

    Every layer uses the same w (GPEN does no style mixing). Layer ``convs[2j]`` upsamples to
    resolution 8·2^j, ``convs[2j+1]`` refines it; each concatenates the encoder feature of its
    resolution, so layers after it see twice the channels.
    """

    def __init__(self, config: GpenConfig) -> None:
        super().__init__()
        ch = gpen_channels(config)
        mult = 2 if config.isconcat else 1
        blur = tuple(config.blur_kernel)
        d = config.style_dim
        self.style = MappingNetwork(d, config.n_mlp, config.lr_mlp)
        self.input = ConstantInput(ch[4])
        self.conv1 = StyledConv(ch[4], ch[4], d, blur=blur, concat=config.isconcat)
        self.to_rgb1 = ToRGB(ch[4] * mult, d, upsample=False)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        in_ch = ch[4]
        for log_r in range(3, int(math.log2(config.size)) + 1):
            out_ch = ch[2**log_r]
            self.convs.append(StyledConv(in_ch * mult, out_ch, d, upsample=True, blur=blur,
                                         concat=config.isconcat))
            self.convs.append(StyledConv(out_ch * mult, out_ch, d, blur=blur,
                                         concat=config.isconcat))
            self.to_rgbs.append(ToRGB(out_ch * mult, d, blur=blur))
            in_ch = out_ch

    def forward(
        self,
        z: Tensor,  # N×D, the encoder's code
        features: list[Tensor],  # encoder outputs, coarsest (4×4) first, one per resolution
    ) -> Tensor:  # N×3×S×S raw RGB
        w = self.style(z)  # N×D, shared by every layer
        out = self.conv1(self.input(z), w, features[0])
        skip = self.to_rgb1(out, w)
        for j, to_rgb in enumerate(self.to_rgbs):
            feature = features[j + 1]
            out = self.convs[2 * j](out, w, feature)
            out = self.convs[2 * j + 1](out, w, feature)
            skip = to_rgb(out, w, skip)
        return skip


class GPEN(nn.Module):
    """GPEN ``FullGenerator``: degraded face in, restored face out, state-dict exact.

    The encoder ``ecd0`` … ``ecd{log2(S)-2}`` halves the resolution from S×S down to 4×4 and keeps
    every output; the 4×4 map, flattened in NCHW order, goes through ``final_linear`` to give z;
    the decoder maps z to w and synthesises the face, concatenating the encoder outputs.

    Build it from a :class:`GpenConfig`; load weights with :func:`gpen_video.models.load.load_gpen`.
    """

    def __init__(self, config: GpenConfig) -> None:
        super().__init__()
        self.config = config
        ch = gpen_channels(config)
        log_size = int(math.log2(config.size))
        blur = tuple(config.blur_kernel)
        self.generator = StyleDecoder(config)
        self.encoder_names = [f"ecd{i}" for i in range(log_size - 1)]
        self.ecd0 = nn.Sequential(conv_layer(3, ch[config.size], 1, downsample=False, blur=blur))
        in_ch = ch[config.size]
        for i, log_r in enumerate(range(log_size - 1, 1, -1), start=1):
            out_ch = ch[2**log_r]
            self.add_module(f"ecd{i}", nn.Sequential(conv_layer(in_ch, out_ch, 3, True, blur)))
            in_ch = out_ch
        self.final_linear = nn.Sequential(
            EqualLinear(ch[4] * 4 * 4, config.style_dim, activate=True)
        )

    @property
    def size(self) -> int:
        """Side of the square input and output, in pixels."""
        return self.config.size

    def forward(
        self,
        x: Tensor,  # N×3×S×S, RGB in [-1, 1]
    ) -> Tensor:  # N×3×S×S, RGB, nominally [-1, 1] but not clamped
        """Restore a batch of aligned face crops.

        Args:
            x: N×3×S×S float, RGB, range [-1, 1] ((pixel/255 − 0.5)/0.5), S = ``config.size``.

        Returns:
            N×3×S×S raw network output in the same convention, neither clamped nor rounded
            (:func:`gpen_video.models.io.from_model` turns it into pixels).
        """
        features = []  # S×S, S/2×S/2, …, 4×4
        for name in self.encoder_names:
            x = getattr(self, name)(x)
            features.append(x)
        z = self.final_linear(x.flatten(1))  # N×D
        return self.generator(z, features[::-1])
