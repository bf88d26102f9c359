"""Device→host synchronisations of an ATS forward: at most one per ATS block.

A TorchDispatchMode sees every ATen op of the forward and counts those whose result the host has to
wait for on an accelerator: ``_local_scalar_dense`` (``.item()``, ``int(t)``, ``bool(t)``), data-
dependent output shapes (``nonzero``, ``masked_select``, ``unique*``, bool-mask indexing, tensor
``repeat_interleave``, ``bincount`` — CUDA reads its max), comparisons returning Python bools, and
explicit copies to the CPU (``.to("cpu")``/``.tolist()`` of the token bookkeeping, written as such so
that it is visible here on a CPU run too). The one read per ATS block is ``TokenSet.select``.
"""
import traceback

import pytest
import torch
from _models import clips, tiny_timesformer, tiny_xvit
from torch.utils._python_dispatch import TorchDispatchMode

from video_ats.models.layers import attention_layout

aten = torch.ops.aten
SYNCING = {aten.nonzero, aten._local_scalar_dense, aten.masked_select, aten.unique_consecutive, aten._unique,
           aten._unique2, aten.unique_dim, aten.unique_dim_consecutive, aten.bincount, aten.equal,
           aten.allclose, aten.is_nonzero, aten.argwhere}
INDEXING = {aten.index, aten.index_put, aten.index_put_, aten._index_put_impl_}


def _is_cpu(device) -> bool:
    return device is not None and torch.device(device).type == "cpu"


class HostSyncs(TorchDispatchMode):
    """Records the ops of a region that make the host wait for the device (with where they came from)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.syncs(func, args, kwargs):
            self.calls.append((str(func), "".join(traceback.format_stack(limit=8)[:-2])))
        return func(*args, **kwargs)

    @staticmethod
    def syncs(func, args, kwargs) -> bool:
        packet = func.overloadpacket
        if packet in SYNCING:
            return True
        if func is aten.repeat_interleave.Tensor or func is aten.repeat_interleave.self_Tensor:
            return kwargs.get("output_size") is None
        if packet in INDEXING:
            return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1] if i is not None)
        if packet is aten._to_copy:                       # .to("cpu") / .cpu() / .tolist() of a device tensor
            return _is_cpu(kwargs.get("device"))
        if packet is aten.copy_:                          # device → host copy into a CPU tensor
            return args[0].device.type == "cpu" and args[1].device.type != "cpu"
        return False


def test_the_counter_sees_syncs():
    x = torch.arange(6)
    with HostSyncs() as hs:
        x.nonzero()
        int(x.sum())
        x[x > 2]
        x.to("cpu", copy=True).tolist()
        x.repeat_interleave(torch.tensor([1, 2, 0, 1, 1, 1]))
        x.index_select(0, torch.tensor([1, 2]))           # not a sync
        x.float()                                         # not a sync
    assert [c[0] for c in hs.calls] == ["aten.nonzero.default", "aten._local_scalar_dense.default",
                                        "aten.index.Tensor", "aten._to_copy.default",
                                        "aten.repeat_interleave.Tensor"]


TINY = dict(img_size=32, patch_size=8, embed_dim=64, depth=4, num_heads=4, num_frames=4, num_classes=7)
XVIT = dict(TINY, num_frames=8, num_segments=4, head_num_heads=4, head_mlp_dim=48)
ATS = {"blocks": [0, 2, 3], "num_tokens": [0.6, 0.5, 0.4]}


def model(name, ats=ATS):
    if name == "timesformer":
        m = tiny_timesformer(TINY, ats=ats)
    else:
        m = tiny_xvit(XVIT, embeds=False, ats=ats)
    with torch.no_grad():                                 # sharper attention: clips keep unevenly
        for blk in m.blocks:
            blk.attn.qkv.weight.mul_(6.0)
    return m


@pytest.mark.parametrize("layout", ["bucketed", "padded"])
@pytest.mark.parametrize("name", ["timesformer", "xvit"])
def test_at_most_one_host_sync_per_ats_block(name, layout):
    m = model(name)
    x = clips(3, t=m.num_frames)
    x[1] *= 3.0                                           # different content -> different kept counts
    with torch.no_grad(), attention_layout(layout), HostSyncs() as hs:
        m(x)
    kept = m.last_kept_tokens
    assert len({tuple(v.tolist()) for v in kept.values()}) > 1 and len(set(kept[0].tolist())) > 1, "uneven keep"
    assert len(hs.calls) <= len(ATS["blocks"]), "\n".join(f"{f}\n{where}" for f, where in hs.calls)
    assert all(f == "aten._to_copy.default" for f, _ in hs.calls)      # the kept counts, read once


@pytest.mark.parametrize("name", ["timesformer", "xvit"])
def test_dense_forward_has_no_host_sync(name):
    m = model(name, ats=None)
    with torch.no_grad(), HostSyncs() as hs:
        m(clips(2, t=m.num_frames))
    assert hs.calls == []
