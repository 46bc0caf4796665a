"""Emulated reduced precisions for CPU tests of the quality gate (an instrument, not the product).

The CPU path is fp32 only, so a test cannot run GPEN in fp16 or bf16 here. Instead every leaf
module's floating-point output is rounded to a number of mantissa bits as it leaves the module:
7 bits (bfloat16's), 10 bits (float16's, without its narrow exponent range) or fewer (a precision
too coarse for any face). The arithmetic inside each layer stays fp32, so the emulation is kinder
than the real thing; a test that needs a failure uses a coarse width.
"""

from __future__ import annotations

import torch


def round_mantissa(x: torch.Tensor, bits: int) -> torch.Tensor:
    """``x`` with its mantissa rounded to ``bits`` bits after the leading one."""
    mantissa, exponent = torch.frexp(x)  # x = m·2^e, 0.5 ≤ |m| < 1
    scale = float(2 ** (bits + 1))
    return torch.ldexp(torch.round(mantissa * scale) / scale, exponent)


def emulate_precision(net: torch.nn.Module, bits: int) -> torch.nn.Module:
    """``net`` (in place) with every leaf module's float output rounded to ``bits`` bits."""
    def hook(_module, _inputs, output):
        if isinstance(output, torch.Tensor) and output.is_floating_point():
            return round_mantissa(output, bits)
        return output

    for module in net.modules():
        if not any(True for _ in module.children()):
            module.register_forward_hook(hook)
    return net
