"""Model equivalences on the device of VIDEO_ATS_TEST_DEVICE (default cpu; see tests/conftest.py):
`VIDEO_ATS_TEST_DEVICE=cuda pytest tests/test_device_equivalence.py` checks them on a GPU."""
import pytest
import torch
from _models import tiny_timesformer, tiny_xvit

from video_ats.reference import official_timesformer_forward

TSF = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 3, "num_heads": 2, "num_frames": 4,
       "num_classes": 5}
XVIT = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 3, "num_heads": 2, "num_frames": 4,
        "num_classes": 5, "head_num_heads": 2, "head_mlp_dim": 32}
TOL = {"atol": 1e-4, "rtol": 1e-4}


def _model(name, kw, device, **extra):
    if name == "timesformer":                       # the zero-initialised temporal paths made to matter
        return tiny_timesformer(kw, **extra).to(device)
    return tiny_xvit(kw, embeds=False, **extra).to(device)


def _x(b, device):
    return torch.randn(b, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1)).to(device)


def test_timesformer_dense_matches_official_forward(device):
    m = _model("timesformer", TSF, device)
    x = _x(2, device)
    with torch.no_grad():
        torch.testing.assert_close(m(x), official_timesformer_forward(m, x), **TOL)


@pytest.mark.parametrize("name,kw", [("timesformer", TSF), ("xvit", XVIT)])
def test_ats_keeping_every_token_equals_dense(name, kw, device):
    dense = _model(name, kw, device)
    ats = _model(name, kw, device, ats={"blocks": [0, 1], "num_tokens": 10**4})
    x = _x(3, device)
    with torch.no_grad():
        torch.testing.assert_close(ats(x), dense(x), **TOL)
    assert all((k == 64).all() for k in ats.last_kept_tokens.values())


@pytest.mark.parametrize("name,kw", [("timesformer", TSF), ("xvit", XVIT)])
def test_ats_batch_independence_and_cpu_agreement(name, kw, device):
    """A clip's logits do not depend on the rest of the batch, and the device computes what the CPU does."""
    ats = {"blocks": [0, 1], "num_tokens": [0.5, 0.5]}
    m = _model(name, kw, device, ats=ats)
    x = _x(3, device)
    with torch.no_grad():
        together = m(x)
        kept = {b: v.cpu() for b, v in m.last_kept_tokens.items()}
        alone = torch.cat([m(x[i:i + 1]) for i in range(3)])
        torch.testing.assert_close(together, alone, **TOL)
        cpu = _model(name, kw, "cpu", ats=ats)
        torch.testing.assert_close(together.cpu(), cpu(x.cpu()), **TOL)
    assert all(torch.equal(kept[b], cpu.last_kept_tokens[b]) for b in kept)
