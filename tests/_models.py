"""Tiny-model helpers shared by the tests (imported as ``from _models import ...``): one builder per
backbone, so a newcomer finds how every test model is made in one place.

Each builder seeds the global RNG (``seed``; None leaves it as it is), builds the registered model from
``sizes`` (a dict of constructor args; ``**kw`` adds to or overrides it, e.g. ``ats=...``, ``tome=...``,
``num_classes=4``), puts it in eval mode (``eval=False``: train mode, as ``create_model`` returns it) and
then applies the init tweaks its options ask for, always in the same order, so a test that names the
same options gets bit-for-bit the same model as before the helpers moved here.
"""
import torch

import video_ats


def _build(name, sizes, seed, eval, kw):
    if seed is not None:
        torch.manual_seed(seed)
    m = video_ats.create_model(name, **{**sizes, **kw})
    return m.eval() if eval else m


def _jitter(m, std):
    if std:
        with torch.no_grad():             # every parameter non-trivial, so a missed key shows
            for p in m.parameters():
                p.add_(torch.randn_like(p) * std)


def tiny_timesformer(sizes, seed=0, *, paths=True, jitter=0.0, eval=True, **kw):
    """A tiny TimeSformer of ``sizes``, seeded, in eval mode.

    ``paths=True`` (default) makes every path matter: the official init zeroes temporal_fc (blocks > 0)
    and time_embed, so they are redrawn (std 0.05 and 0.5). ``paths=False`` keeps the official init.
    ``jitter``: then add N(0, jitter²) noise to every parameter (checkpoint tests)."""
    m = _build("timesformer", sizes, seed, eval, kw)
    if paths:
        with torch.no_grad():
            for blk in m.blocks:
                blk.temporal_fc.weight.normal_(std=0.05)
            m.time_embed.normal_(std=0.5)
    _jitter(m, jitter)
    return m


def tiny_xvit(sizes, seed=0, *, embeds=True, sharpen=1.0, jitter=0.0, eval=True, **kw):
    """A tiny X-ViT of ``sizes``, seeded, in eval mode.

    ``embeds=True`` (default) redraws temp_embed and pos_embed (std 0.5: a non-zero temporal embedding);
    ``embeds=False`` keeps the official init. ``sharpen`` scales every block's qkv weights (sharper
    attention makes ATS drop unevenly; 1.0 leaves them as they are). ``jitter`` as for TimeSformer."""
    m = _build("xvit", sizes, seed, eval, kw)
    if embeds:
        with torch.no_grad():
            m.temp_embed.normal_(std=0.5)
            m.pos_embed.normal_(std=0.5)
    with torch.no_grad():
        for blk in m.blocks:
            blk.attn.qkv.weight.mul_(sharpen)
    _jitter(m, jitter)
    return m


def clips(b, t=4, size=32, seed=1):
    """A seeded (b, 3, t, size, size) random clip batch."""
    return torch.randn(b, 3, t, size, size, generator=torch.Generator().manual_seed(seed))
