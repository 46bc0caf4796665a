"""GPEN's inference form: the network of :mod:`gpen_video.models.gpen`, rebuilt once at load for
speed, with a choice of *tactics* (ways to compute the same layer) at every site that has one.

The plain :class:`~gpen_video.models.gpen.GPEN` stays the reference: it is the official
arithmetic, written for reading. :func:`inference_form` takes one (any weights, any device or
dtype) and returns an :class:`InferenceGPEN` that computes the same function, in real
arithmetic exactly, in floating point to rounding (tests hold every tactic to the plain module
within 1e-5, fp32). What changes:

* **Weight-only math done once.** Equalised-learning-rate scales are multiplied into the
  weights; every layer's modulation (``w → style``) is one row block of a single matrix, so all
  styles come from one matmul; the demodulation's Σ_k W² is kept per layer, so a forward does
  only ``rsqrt(style² @ Σ_k W² + 1e-8)``.
* **Constant gains folded.** A fused leaky-ReLU is ``√2 · lrelu(x + b)``. Here activations are
  kept *without* the √2 (``lrelu`` is positively homogeneous), and each consumer's weight is
  multiplied by √2 instead: the next convolution, the ToRGB, the encoder-feature scale of the
  decoder's injections, ``final_linear``. The demodulation is computed from the unscaled weights
  (it normalises the true layer). The tiny mapping network keeps its √2 as it is.
* **Epilogues written into their output.** A styled convolution writes ``bias + y·d`` and
  ``bias + s·feature`` straight into the two halves of the concatenated output and applies the
  leaky-ReLU in place: no separate ``cat``, bias or ``√2`` passes.

Tactics (:data:`BLUR_TACTICS` × :data:`MODULATION_TACTICS`), per site:

* Blur, at every resampling layer (the encoder's blur → 3×3 stride-2 conv; the decoder's
  transposed 3×3 stride-2 conv → blur): ``depthwise`` (the 4×4 depthwise convolution, as the
  plain module), ``separable`` (two 1-D depthwise passes, 4×1 then 1×4), ``composite`` (the blur
  folded into the convolution: one 6×6 stride-2 conv or transposed conv, kernel = W ∗ blur),
  ``subpixel`` (that 6×6 kernel split into its four 3×3 phases: ``pixel_unshuffle`` → 3×3 conv on
  the way down, 3×3 conv to 4·C channels → ``pixel_shuffle`` on the way up). The last two are
  dense convolutions with 4× the multiply-adds of the layer and no depthwise pass.
* Modulation, at every modulated conv (styled convs and ToRGBs): ``activations`` (scale the
  input channels by the style, convolve with the shared weight, scale the output channels by
  the demodulation: the batch-free form the plain module uses) or ``weights`` (fold style and
  demodulation into a per-sample weight and run one grouped convolution, groups = batch: no
  pass over the activations, a weight-sized multiply per sample).

Which tactic is fastest depends on the device, precision, batch and layer size, so it is timed
there (:mod:`gpen_video.engine.tactics`); :class:`TacticPlan` says what was chosen. The default
plan (``depthwise`` + ``activations`` everywhere) is the plain module's arithmetic.

Conventions as in :mod:`gpen_video.models.gpen`: NCHW tensors (channels_last memory welcome),
RGB in [-1, 1] in and raw RGB out, N free, deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gpen_video.models.gpen import GPEN, LRELU_SLOPE, SQRT2, upfirdn2d

BLUR_TACTICS = ("depthwise", "separable", "composite", "subpixel")
MODULATION_TACTICS = ("activations", "weights")
DEFAULT_BLUR = "depthwise"
DEFAULT_MODULATION = "activations"


@dataclass(frozen=True)
class TacticPlan:
    """The tactic of each site: ``site name → "blur/modulation"``, ``"blur"`` or
    ``"modulation"`` (by what the site has). Sites not named take the defaults."""

    choices: tuple[tuple[str, str], ...] = ()
    label: str = "default"  # how it was made: default | timed | uniform:<tactic> | custom

    def get(self, site: str) -> str | None:
        return dict(self.choices).get(site)

    def as_dict(self) -> dict[str, str]:
        return dict(self.choices)

    @classmethod
    def of(cls, mapping: dict[str, str], label: str = "custom") -> "TacticPlan":
        return cls(tuple(sorted(mapping.items())), label)


# ---------------------------------------------------------------------------------------------
# Kernels derived once from the weights
# ---------------------------------------------------------------------------------------------


def composite_kernel(weight: Tensor, blur: Tensor) -> Tensor:
    """The kernel of "conv with ``weight``, then convolve with ``blur``" as one convolution:
    the full 2-D convolution ``weight ∗ blur`` of every O×I slice (k + K − 1 taps a side).

    ``weight``: O×I×k×k (any layout whose last two axes are taps); ``blur``: K×K.
    """
    o, i, k, _ = weight.shape
    kk = blur.shape[-1]
    flipped = torch.flip(blur, (0, 1)).to(weight)[None, None]
    full = F.conv2d(weight.reshape(o * i, 1, k, k), flipped, padding=kk - 1)
    return full.reshape(o, i, k + kk - 1, k + kk - 1)


def subpixel_down_weight(kernel: Tensor) -> Tensor:
    """A 6×6 stride-2 correlation kernel (O×I×6×6) as a 3×3 kernel over the four phases of
    ``pixel_unshuffle(x, 2)``: O×4I×3×3, input channel ``i·4 + p·2 + q`` = phase (p, q) of i."""
    o, i, k, _ = kernel.shape
    half = k // 2
    phases = kernel.reshape(o, i, half, 2, half, 2)  # [o, i, a, p, b, q] = K[o, i, 2a+p, 2b+q]
    return phases.permute(0, 1, 3, 5, 2, 4).reshape(o, i * 4, half, half)


def subpixel_up_weight(kernel_t: Tensor) -> Tensor:
    """A 6×6 stride-2 transposed-conv kernel (I×O×6×6, padding 2) as a 3×3 correlation
    (padding 1) to the four output phases, for ``pixel_shuffle(·, 2)``: 4O×I×3×3, output channel
    ``o·4 + p·2 + q`` = phase (p, q) of o. Phase p of output row 2t+p reads input rows t−1, t,
    t+1 with taps K[4+p], K[2+p], K[p]."""
    i, o, k, _ = kernel_t.shape
    half = k // 2
    flipped = torch.flip(kernel_t.reshape(i, o, half, 2, half, 2), (2, 4))  # a → half−1−a
    return flipped.permute(1, 3, 5, 0, 2, 4).reshape(o * 4, i, half, half)


def _separable_taps(blur: Tensor) -> Tensor:
    """The 1-D factor t of a separable K×K kernel k = t ⊗ t (GPEN's blurs are outer products of
    their taps, scaled to a gain)."""
    row = blur.sum(dim=0)  # = c·Σt·t for k = c·t⊗t; its sum is k's sum (the gain)
    return row / blur.sum().sqrt()


def _derived(weight: Tensor, blur: Tensor) -> Tensor:
    """:func:`composite_kernel` computed in fp32 (whatever the weight's precision), returned in
    the weight's dtype, device and memory format."""
    kernel = composite_kernel(weight.float(), blur.float()).to(weight.dtype)
    if weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous():
        kernel = kernel.contiguous(memory_format=torch.channels_last)
    return kernel


def _keep(module: nn.Module, name: str, value: Tensor | None) -> None:
    """Set (or drop, with None) a derived buffer of ``module``."""
    if value is None:
        if name in module._buffers:
            del module._buffers[name]
        return
    module.register_buffer(name, value)


# ---------------------------------------------------------------------------------------------
# Sites
# ---------------------------------------------------------------------------------------------


class _Site(nn.Module):
    """A layer with tactics. Subclasses set :attr:`kind` and list their candidates."""

    kind = ""
    tactic: str = ""

    def candidates(self) -> tuple[str, ...]:
        raise NotImplementedError

    def set_tactic(self, tactic: str) -> None:
        if tactic not in self.candidates():
            raise ValueError(f"{tactic!r} is not a tactic of this {self.kind} site: choose one "
                             f"of {', '.join(self.candidates())}")
        self.tactic = tactic


class DownConv(_Site):
    """Encoder stage ``ecd{i}`` (i ≥ 1): blur (pad 2) → 3×3 stride-2 conv → bias, leaky-ReLU.

    Input and output without the fused leaky-ReLU's √2 (folded into the weight)."""

    kind = "down"

    def __init__(self, weight: Tensor, bias: Tensor, blur: Tensor, pad: tuple[int, int],
                 gain: float) -> None:
        super().__init__()
        if not torch.equal(blur, torch.flip(blur, (0, 1))):
            raise ValueError("the composite down kernel assumes a symmetric blur (GPEN's is)")
        w = weight * gain  # O×I×3×3, equalised scale already in
        self.channels = w.shape[1]
        self.pad = pad
        self.register_buffer("weight", w)
        self.register_buffer("bias", bias.clone())
        self.register_buffer("blur", blur.clone())
        self.register_buffer("taps", _separable_taps(blur))
        self.tactic = DEFAULT_BLUR

    def set_tactic(self, tactic: str) -> None:
        super().set_tactic(tactic)
        # the 6×6 composite (correlation, stride 2, padding 2) and its four 3×3 phases, only
        # the one the tactic uses kept (GPEN-512's would otherwise add hundreds of MB)
        composite = _derived(self.weight, self.blur) if tactic in ("composite", "subpixel") \
            else None
        _keep(self, "composite", composite if tactic == "composite" else None)
        _keep(self, "subpixel", subpixel_down_weight(composite) if tactic == "subpixel" else None)

    def candidates(self) -> tuple[str, ...]:
        return BLUR_TACTICS

    def forward(self, x: Tensor) -> Tensor:  # N×I×H×W → N×O×H/2×W/2
        tactic = self.tactic
        if tactic == "depthwise":
            y = F.conv2d(upfirdn2d(x, self.blur, self.channels, pad=self.pad), self.weight,
                         stride=2)
        elif tactic == "separable":
            y = F.conv2d(_separable_blur(x, self.taps, self.pad), self.weight, stride=2)
        elif tactic == "composite":
            y = F.conv2d(x, self.composite, stride=2, padding=self.pad[0])
        else:  # subpixel
            p0, p1 = self.pad
            y = F.conv2d(F.pixel_unshuffle(F.pad(x, (p0, p1, p0, p1)), 2), self.subpixel)
        y = y.add_(self.bias.view(1, -1, 1, 1))
        return F.leaky_relu_(y, LRELU_SLOPE)


def _separable_blur(x: Tensor, taps: Tensor, pad: tuple[int, int]) -> Tensor:
    """Depthwise blur with the separable kernel taps ⊗ taps: two 1-D passes (true convolution;
    GPEN's taps are symmetric)."""
    c = x.shape[1]
    k = taps.shape[0]
    t = torch.flip(taps, (0,)).to(x.dtype)
    p0, p1 = pad
    x = F.pad(x, (p0, p1, p0, p1))
    x = F.conv2d(x, t.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)
    return F.conv2d(x, t.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)


class ModConv(_Site):
    """A modulated convolution: ``style``-scaled input channels, the layer's weight,
    demodulated output channels (``d`` is None for ToRGB), optionally upsampling 2× (transposed
    3×3 stride 2 → blur ×4, pad 1).

    ``weight``: O×I×k×k with the equalised scale in; ``gain`` multiplies the forward weight only
    (the √2 of the producer's activation), the demodulation uses the true weight.
    """

    kind = "modconv"

    def __init__(self, weight: Tensor, gain: float, demodulate: bool, upsample: bool,
                 blur: Tensor | None) -> None:
        super().__init__()
        self.upsample = upsample
        self.demodulate = demodulate
        self.padding = weight.shape[-1] // 2
        self.register_buffer("weight", weight * gain)  # O×I×k×k
        if demodulate:
            self.register_buffer("w2", weight.float().square().sum(dim=(2, 3)))  # O×I, fp32
        if upsample:
            assert blur is not None
            self.register_buffer("weight_t", (weight * gain).transpose(0, 1))  # I×O×k×k
            self.register_buffer("blur", blur.clone())
            self.register_buffer("taps", _separable_taps(blur))
            self.tactic = f"{DEFAULT_BLUR}/{DEFAULT_MODULATION}"
        else:
            self.tactic = DEFAULT_MODULATION

    def set_tactic(self, tactic: str) -> None:
        super().set_tactic(tactic)
        if not self.upsample:
            return
        blur = tactic.partition("/")[0]
        # the 6×6 transposed composite (stride 2, padding 2) or its 3×3 phases (4·O outputs),
        # only the one the tactic uses kept
        composite = _derived(self.weight_t, self.blur) if blur in ("composite", "subpixel") \
            else None
        _keep(self, "composite_t", composite if blur == "composite" else None)
        _keep(self, "subpixel", subpixel_up_weight(composite) if blur == "subpixel" else None)

    def candidates(self) -> tuple[str, ...]:
        if self.upsample:
            return tuple(f"{b}/{m}" for b in BLUR_TACTICS for m in MODULATION_TACTICS)
        return MODULATION_TACTICS

    def demodulation(self, style: Tensor) -> Tensor:  # N×I → N×O (style's dtype)
        # FP16 guard: Σ (W·s)² overflows half precision for large styles; sum in fp32
        d = torch.rsqrt(style.float().square() @ self.w2.float().t() + 1e-8)
        return d.to(style.dtype)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        """``x`` N×I×H×W, ``style`` N×I → N×O×H'×W' (demodulated when the layer is)."""
        d = self.demodulation(style) if self.demodulate else None
        blur, _, modulation = self.tactic.rpartition("/")
        if modulation == "weights":
            return self._weights(x, style, d, blur)
        x = x * style[:, :, None, None].to(x.dtype)
        y = self._conv(x, blur, None, 1)
        if d is not None:
            y = y.mul_(d[:, :, None, None].to(y.dtype))
        return y

    def _weights(self, x: Tensor, style: Tensor, d: Tensor | None, blur: str) -> Tensor:
        """Style and demodulation folded into a per-sample weight; one grouped conv."""
        n, c, h, w = x.shape
        s = style.to(x.dtype)
        if self.upsample:
            if blur == "subpixel":  # 4O×I×3×3: output channel o·4 + phase
                scale_out = d.repeat_interleave(4, dim=1) if d is not None else None
                weight = _modulate(self.subpixel, s, scale_out, transposed=False)
            else:
                base = self.composite_t if blur == "composite" else self.weight_t
                weight = _modulate(base, s, d, transposed=True)  # N·I×O×k×k
        else:
            weight = _modulate(self.weight, s, d, transposed=False)  # N·O×I×k×k
        xg = x.reshape(1, n * c, h, w)
        y = self._conv(xg, blur, weight, n)
        return y.reshape(n, -1, y.shape[-2], y.shape[-1])

    def _conv(self, x: Tensor, blur: str, weight: Tensor | None, groups: int) -> Tensor:
        if not self.upsample:
            w = self.weight if weight is None else weight
            return F.conv2d(x, w, padding=self.padding, groups=groups)
        if blur == "subpixel":
            w = self.subpixel if weight is None else weight
            return F.pixel_shuffle(F.conv2d(x, w, padding=1, groups=groups), 2)
        if blur == "composite":
            w = self.composite_t if weight is None else weight
            return F.conv_transpose2d(x, w, stride=2, padding=2, groups=groups)
        w = self.weight_t if weight is None else weight
        y = F.conv_transpose2d(x, w, stride=2, groups=groups)  # 2H+1
        channels = y.shape[1]
        if blur == "separable":
            return _separable_blur(y, self.taps, (1, 1))
        return upfirdn2d(y, self.blur, channels, pad=(1, 1))


def _modulate(base: Tensor, style: Tensor, d: Tensor | None, transposed: bool) -> Tensor:
    """Per-sample weights stacked for a grouped convolution: input channels × style, output
    channels × d. ``base`` O×I×k×k (or I×O×k×k with ``transposed``); returns N·O×I×k×k (or
    N·I×O×k×k)."""
    n = style.shape[0]
    b = base.to(style.dtype)
    if transposed:
        w = b[None] * style[:, :, None, None, None]
        if d is not None:
            w = w * d[:, None, :, None, None]
    else:
        w = b[None] * style[:, None, :, None, None]
        if d is not None:
            w = w * d[:, :, None, None, None]
    return w.reshape(n * base.shape[0], *base.shape[1:])


class StyledConv(nn.Module):
    """Modulated conv → [· demod ‖ s·feature] → + bias → leaky-ReLU (no √2), the concatenation
    written in place."""

    def __init__(self, conv: ModConv, inject: float, bias: Tensor, concat: bool) -> None:
        super().__init__()
        self.conv = conv
        self.inject = float(inject)  # the learned feature scale, × √2 (encoder outputs lack it)
        self.concat = concat
        self.register_buffer("bias", bias.clone())

    def forward(self, x: Tensor, style: Tensor, feature: Tensor) -> Tensor:
        y = self.conv(x, style)  # N×C×H×W
        c = y.shape[1]
        bias = self.bias.view(1, -1, 1, 1).to(y.dtype)
        if not self.concat:
            out = torch.add(y, feature, alpha=self.inject).add_(bias)
            return F.leaky_relu_(out, LRELU_SLOPE)
        n, _, h, w = y.shape
        out = torch.empty((n, 2 * c, h, w), dtype=y.dtype, device=y.device,
                          memory_format=_memory_format(y))
        torch.add(bias[:, :c], y, out=out[:, :c])
        torch.add(bias[:, c:], feature, alpha=self.inject, out=out[:, c:])
        return F.leaky_relu_(out, LRELU_SLOPE)


def _memory_format(t: Tensor) -> torch.memory_format:
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) \
            and not t.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


class ToRGB(nn.Module):
    """1×1 modulated conv (no demodulation) + bias + the 2× upsampled skip."""

    def __init__(self, conv: ModConv, bias: Tensor, upsample_kernel: Tensor | None,
                 upsample_pad: tuple[int, int]) -> None:
        super().__init__()
        self.conv = conv
        self.up_pad = tuple(upsample_pad)
        self.register_buffer("bias", bias.clone())  # 1×3×1×1
        self.has_skip = upsample_kernel is not None
        if upsample_kernel is not None:
            self.register_buffer("up_kernel", upsample_kernel.clone())

    def forward(self, x: Tensor, style: Tensor, skip: Tensor | None) -> Tensor:
        out = self.conv(x, style).add_(self.bias.to(x.dtype))
        if skip is not None:
            out = out.add_(upfirdn2d(skip, self.up_kernel, 3, up=2, pad=self.up_pad))
        return out


# ---------------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------------


class InferenceGPEN(nn.Module):
    """The inference form of a GPEN (see the module docstring). Build it with
    :func:`inference_form`; ``forward`` takes and returns what :class:`GPEN` does."""

    def __init__(self, net: GPEN) -> None:
        super().__init__()
        self.config = net.config
        g = net.generator
        # encoder
        first = net.ecd0[0]
        conv0, act0 = first[0], first[1]
        self.register_buffer("enc0_weight", conv0.weight * conv0.scale)
        self.register_buffer("enc0_bias", act0.bias.detach().clone())
        self.down = nn.ModuleList()
        for name in net.encoder_names[1:]:
            blur, conv, act = getattr(net, name)[0]
            self.down.append(DownConv(conv.weight * conv.scale, act.bias, blur.kernel, blur.pad,
                                      SQRT2))
        fl = net.final_linear[0]
        self.register_buffer("fl_weight", fl.weight * fl.scale * SQRT2)
        self.register_buffer("fl_bias", fl.bias * fl.lr_mul)
        # mapping network (tiny: keeps its √2)
        mapping = [(m.weight * m.scale, m.bias * m.lr_mul) for m in list(g.style)[1:]]
        self.register_buffer("map_w", torch.stack([w for w, _ in mapping]))  # L×D×D
        self.register_buffer("map_b", torch.stack([b for _, b in mapping]))  # L×D
        # decoder
        # not named "const": AOTInductor's C++ wrapper uses buffer names as identifiers
        self.register_buffer("const_input", g.input.input.detach().clone())
        modulations: list[tuple[Tensor, Tensor]] = []
        self._slices: list[tuple[int, int]] = []

        def add_style(mc) -> None:
            start = sum(w.shape[0] for w, _ in modulations)
            lin = mc.modulation
            modulations.append((lin.weight * lin.scale, lin.bias * lin.lr_mul))
            self._slices.append((start, start + lin.weight.shape[0]))

        def styled(sc, gain: float) -> StyledConv:
            mc = sc.conv
            add_style(mc)
            blur = mc.blur.kernel if mc.upsample else None
            conv = ModConv(mc.weight[0] * mc.scale, gain, mc.demodulate, mc.upsample, blur)
            return StyledConv(conv, float(sc.noise.weight) * SQRT2, sc.activate.bias,
                              sc.noise.concat)

        def to_rgb(tr) -> ToRGB:
            mc = tr.conv
            add_style(mc)
            conv = ModConv(mc.weight[0] * mc.scale, SQRT2, False, False, None)
            up = tr.upsample
            return ToRGB(conv, tr.bias, up.kernel if up is not None else None,
                         up.pad if up is not None else (0, 0))

        self.conv1 = styled(g.conv1, 1.0)  # reads the constant input, which has no √2 to fold
        self.to_rgb1 = to_rgb(g.to_rgb1)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        for j, tr in enumerate(g.to_rgbs):
            self.convs.append(styled(g.convs[2 * j], SQRT2))
            self.convs.append(styled(g.convs[2 * j + 1], SQRT2))
            self.to_rgbs.append(to_rgb(tr))
        self.register_buffer("mod_w", torch.cat([w for w, _ in modulations]))  # ΣI×D
        self.register_buffer("mod_b", torch.cat([b for _, b in modulations]))  # ΣI

    @property
    def size(self) -> int:
        return self.config.size

    # ------------------------------------------------------------------ tactics
    def sites(self) -> dict[str, _Site]:
        """Every site with a tactic, by name (encoder ``ecd1``…, decoder ``conv1``,
        ``convs.J``, ``to_rgb1``, ``to_rgbs.J``)."""
        found: dict[str, _Site] = {}
        for i, layer in enumerate(self.down, start=1):
            found[f"ecd{i}"] = layer
        found["conv1"] = self.conv1.conv
        found["to_rgb1"] = self.to_rgb1.conv
        for j, layer in enumerate(self.convs):
            found[f"convs.{j}"] = layer.conv
        for j, layer in enumerate(self.to_rgbs):
            found[f"to_rgbs.{j}"] = layer.conv
        return found

    def apply_plan(self, plan: TacticPlan) -> "InferenceGPEN":
        """Set every site's tactic from ``plan`` (defaults where it names none); returns self.

        Raises:
            ValueError: the plan names a site this network lacks, or a tactic a site lacks.
        """
        sites = self.sites()
        unknown = [name for name, _ in plan.choices if name not in sites]
        if unknown:
            raise ValueError(f"the tactic plan names sites this network lacks: {unknown}")
        for name, site in sites.items():
            site.set_tactic(plan.get(name) or site.candidates()[0])
        self.plan = plan
        return self

    def current_plan(self) -> TacticPlan:
        return TacticPlan.of({name: site.tactic for name, site in self.sites().items()},
                             getattr(getattr(self, "plan", None), "label", "custom"))

    # ------------------------------------------------------------------ forward
    def styles(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Encoder features (coarsest first) and one style per modulated conv, in order."""
        x = F.conv2d(x, self.enc0_weight.to(x.dtype))
        x = F.leaky_relu_(x.add_(self.enc0_bias.view(1, -1, 1, 1).to(x.dtype)), LRELU_SLOPE)
        features = [x]
        for layer in self.down:
            x = layer(x)
            features.append(x)
        z = F.linear(x.flatten(1), self.fl_weight.to(x.dtype), self.fl_bias.to(x.dtype))
        w = F.leaky_relu(z, LRELU_SLOPE) * SQRT2
        w = w * torch.rsqrt(torch.mean(w * w, dim=1, keepdim=True) + 1e-8)
        for layer in range(self.map_w.shape[0]):
            w = F.leaky_relu(F.linear(w, self.map_w[layer].to(w.dtype)) +
                             self.map_b[layer].to(w.dtype), LRELU_SLOPE) * SQRT2
        every = F.linear(w, self.mod_w.to(w.dtype), self.mod_b.to(w.dtype))
        return features[::-1], [every[:, a:b] for a, b in self._slices]

    def forward(self, x: Tensor) -> Tensor:  # N×3×S×S in [-1, 1] → N×3×S×S raw RGB
        features, styles = self.styles(x)
        it = iter(styles)
        n = x.shape[0]
        out = self.const_input.to(x.dtype).expand(n, -1, -1, -1)
        out = self.conv1(out, next(it), features[0])
        skip = self.to_rgb1(out, next(it), None)
        for j, to_rgb in enumerate(self.to_rgbs):
            feature = features[j + 1]
            out = self.convs[2 * j](out, next(it), feature)
            out = self.convs[2 * j + 1](out, next(it), feature)
            skip = to_rgb(out, next(it), skip)
        return skip


def uniform_plan(form: InferenceGPEN, blur: str, modulation: str) -> TacticPlan:
    """``blur`` at every resampling site and ``modulation`` at every modulated conv of
    ``form`` (for comparisons: the roofline, tests)."""
    choices = {}
    for name, site in form.sites().items():
        options = site.candidates()
        choices[name] = next(t for t in (f"{blur}/{modulation}", blur, modulation) if t in options)
    return TacticPlan.of(choices, f"uniform:{blur}/{modulation}")


def inference_form(net: GPEN, plan: TacticPlan | None = None) -> InferenceGPEN:
    """The inference form of ``net`` on its device and dtype, in eval mode without gradients,
    with ``plan``'s tactics (default: depthwise blurs, activation modulation). ``net`` is not
    changed; its weights are read once (derived kernels are computed in fp32 where ``net`` is
    fp32, else in ``net``'s dtype)."""
    with torch.no_grad():
        form = InferenceGPEN(net)
    form.eval().requires_grad_(False)
    return form.apply_plan(plan or TacticPlan())
