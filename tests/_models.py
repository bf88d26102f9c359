"""Tiny-model helpers shared by the model tests (imported as ``from _models import ...``)."""
import torch

import video_ats


def tiny_timesformer(sizes, seed=0, **kw):
    """A tiny TimeSformer of ``sizes`` (dict of constructor args) in eval mode, seeded, with every path
    made to matter: the official init zeroes temporal_fc (blocks > 0) and time_embed."""
    torch.manual_seed(seed)
    m = video_ats.create_model("timesformer", **{**sizes, **kw}).eval()
    with torch.no_grad():
        for blk in m.blocks:
            blk.temporal_fc.weight.normal_(std=0.05)
        m.time_embed.normal_(std=0.5)
    return m


def clips(b, t=4, size=32, seed=1):
    """A seeded (b, 3, t, size, size) random clip batch."""
    return torch.randn(b, 3, t, size, size, generator=torch.Generator().manual_seed(seed))
