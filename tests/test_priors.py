"""RetinaFace prior decoding (``gpen_video.faces.priors``) against facexlib's decoders, the
reference: the same boxes and landmarks in pixels, for all priors and for a selection."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from facexlib.detection.retinaface import generate_config

from gpen_video.faces.priors import Priors
from tests.geometry import facexlib_decode


@pytest.mark.parametrize("network", ["mobile0.25", "resnet50"])
@pytest.mark.parametrize("height, width", [(192, 192), (224, 224), (200, 330), (540, 960)])
def test_priors_decode_what_facexlib_decodes(network, height, width) -> None:
    cfg = generate_config(network)
    priors = Priors.for_image(cfg, height, width, torch.from_numpy)
    count = priors.centre.shape[1]
    g = torch.Generator().manual_seed(height * width)
    loc = torch.randn(3, count, 4, generator=g)
    landm = 2.0 * torch.randn(3, count, 10, generator=g)

    boxes, points = facexlib_decode(cfg, height, width, loc, landm)
    assert count == boxes.shape[1]
    # float32 in another order: agreement to a few units in the last place of the pixel values
    np.testing.assert_allclose(priors.boxes(loc).numpy(), boxes.numpy(), rtol=0, atol=2e-3)
    np.testing.assert_allclose(priors.landmarks(landm).numpy(), points.numpy(), rtol=0,
                               atol=2e-3)

    # a selection decodes like the same priors of the full set
    index = torch.randint(0, count, (3, 7), generator=g)
    chosen = priors.take(index)
    rows = torch.arange(3)[:, None]
    np.testing.assert_allclose(
        chosen.boxes(loc[rows, index]).numpy(), boxes[rows, index].numpy(), rtol=0, atol=2e-3)
    np.testing.assert_allclose(
        chosen.landmarks(landm[rows, index].reshape(3, 7, 10)).numpy(),
        points[rows, index].numpy(), rtol=0, atol=2e-3)
