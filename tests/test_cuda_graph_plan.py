"""CUDA graphs planned at load: the batch sizes, the padding of partial batches (CPU).

On the CPU nothing is captured (``capture=False``), but the plan and the padding are the same
code the CUDA path replays graphs through; the network is a random-weight GPEN of the real
architecture (64 px, narrow), whose faces must not depend on the padding rows.
"""

from __future__ import annotations

import pytest
import torch

from gpen_video.backends.cuda_graphs import GraphedForward, padded_size, plan_batch_sizes
from tests.engine_helpers import small_gpen


def test_plan_covers_every_batch_up_to_the_largest_with_at_most_double_work():
    assert plan_batch_sizes(1) == (1,)
    assert plan_batch_sizes(8) == (1, 2, 4, 8)
    assert plan_batch_sizes(12) == (1, 2, 4, 8, 12)
    assert plan_batch_sizes(32) == (1, 2, 4, 8, 16, 32)
    for largest in (1, 5, 8, 12, 32):
        sizes = plan_batch_sizes(largest)
        for n in range(1, largest + 1):
            size = padded_size(n, sizes)
            assert n <= size < 2 * n or size == n
    with pytest.raises(ValueError):
        plan_batch_sizes(0)


@pytest.fixture(scope="module")
def net():
    return small_gpen(seed=3)


def _forward(net):
    def fn(x):
        y = net(x)
        return y[0] if isinstance(y, (tuple, list)) else y
    return fn


def test_sizes_fixed_at_load_and_a_padded_partial_batch_gives_the_unpadded_faces(net):
    calls = []

    def fn(x):
        calls.append(int(x.shape[0]))
        return _forward(net)(x)

    graphed = GraphedForward(fn, plan_batch_sizes(8), capture=False)
    example = torch.zeros(1, 3, 64, 64)
    with torch.inference_mode():
        graphed.prepare(example)
    planned = graphed.sizes
    assert planned == (1, 2, 4, 8) and graphed.prepared and not graphed.disabled
    x = torch.rand(8, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.inference_mode():
        for n in (3, 5, 8, 1, 6):
            calls.clear()
            out = graphed(x[:n])
            eager = _forward(net)(x[:n])  # the unpadded forward pass
            assert calls == [padded_size(n, planned)]  # ran once, at the padded size
            assert out.shape == eager.shape
            torch.testing.assert_close(out, eager, atol=2e-5, rtol=1e-5)
    assert graphed.sizes == planned  # nothing planned (or captured) after load
    assert graphed.calls == {1: 1, 2: 0, 4: 1, 8: 3}


def test_a_batch_above_the_largest_size_is_cut_into_planned_pieces(net):
    graphed = GraphedForward(_forward(net), (1, 2, 4), capture=False).prepare(torch.zeros(1))
    x = torch.rand(7, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.inference_mode():
        out = graphed(x)
        eager = _forward(net)(x)
    torch.testing.assert_close(out, eager, atol=2e-5, rtol=1e-5)
    assert graphed.calls == {1: 0, 2: 0, 4: 2}  # 4 + 3 (padded to 4)
