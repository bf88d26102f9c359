"""Checkpoint loading: round trips, the official TimeSformer format, timm ViT init, safety."""
import os

import pytest
import timm
import torch
from _models import tiny_timesformer

import video_ats
from video_ats.checkpoint import load_checkpoint, save_state
from video_ats.errors import UserError

TINY = dict(img_size=32, patch_size=8, embed_dim=64, depth=3, num_heads=4, num_frames=4, num_classes=7)
JITTER = dict(paths=False, jitter=0.02)   # every parameter non-trivial, so a missed key shows


def x_(t=4, size=32):
    return torch.randn(2, 3, t, size, size, generator=torch.Generator().manual_seed(0))


def test_project_checkpoint_round_trip(tmp_path):
    src, dst = tiny_timesformer(TINY, 0, **JITTER), tiny_timesformer(TINY, 1, **JITTER)
    path = tmp_path / "ckpt.pth"
    save_state({"model": src.state_dict(), "arch": "timesformer", "epoch": 3}, path)
    report = load_checkpoint(dst, path)
    assert report["missing"] == [] and report["unexpected"] == []
    with torch.no_grad():
        assert torch.equal(src(x_()), dst(x_()))


def test_official_format_loads_strictly(tmp_path):
    src, dst = tiny_timesformer(TINY, 0, **JITTER), tiny_timesformer(TINY, 1, **JITTER)
    official = {"model_state": {f"model.{k}": v for k, v in src.state_dict().items()},
                "optimizer_state": {"state": {}, "param_groups": []}, "epoch": 15,
                "cfg": "MODEL:\n  ARCH: vit\n"}
    path = tmp_path / "TimeSformer_divST_8x32_224_K400.pyth"
    torch.save(official, path)
    report = video_ats.load_checkpoint(dst, str(path))
    assert any("official" in n for n in report["notes"])
    with torch.no_grad():
        assert torch.equal(src(x_()), dst(x_()))


def test_missing_or_foreign_keys_are_clear_errors(tmp_path):
    sd = tiny_timesformer(TINY, 0, **JITTER).state_dict()
    broken = {f"model.{k}": v for k, v in sd.items() if "blocks.1.mlp" not in k}
    with pytest.raises(UserError, match=r"4 missing keys \[blocks\.1\.mlp"):
        load_checkpoint(tiny_timesformer(TINY, 1, **JITTER), {"model_state": broken})
    foreign = {f"backbone.{k}": v for k, v in sd.items()}
    with pytest.raises(UserError, match="unexpected keys"):
        load_checkpoint(tiny_timesformer(TINY, 1, **JITTER), foreign)


def test_other_architecture_size_is_a_clear_error():
    big = tiny_timesformer(TINY, 0, **JITTER, embed_dim=128)
    with pytest.raises(UserError, match="does not fit this model"):
        load_checkpoint(tiny_timesformer(TINY, 1, **JITTER), big.state_dict())


def test_head_of_another_class_count(tmp_path):
    src = tiny_timesformer(TINY, 0, **JITTER, num_classes=400)
    dst = tiny_timesformer(TINY, 1, **JITTER, num_classes=7)
    with pytest.raises(UserError, match="drop_head"):
        load_checkpoint(dst, src.state_dict())
    fresh_head = dst.head.weight.clone()
    report = load_checkpoint(dst, src.state_dict(), drop_head=True)
    assert torch.equal(dst.head.weight, fresh_head)
    assert torch.equal(dst.blocks[0].attn.qkv.weight, src.blocks[0].attn.qkv.weight)
    assert any("drop_head" in n for n in report["notes"])


def test_embeddings_resized_for_other_frames_and_grid():
    src = tiny_timesformer(TINY, 0, **JITTER)                          # 4 frames, 4x4 grid
    dst = tiny_timesformer(TINY, 1, **JITTER, num_frames=8, img_size=64)  # 8 frames, 8x8 grid
    load_checkpoint(dst, {"model_state": {f"model.{k}": v for k, v in src.state_dict().items()}})
    # nearest resizing: each source entry repeated twice along each axis
    assert torch.equal(dst.time_embed[0, ::2], src.time_embed[0]) and torch.equal(dst.time_embed[0, 1::2], src.time_embed[0])
    grid = dst.pos_embed[0, 1:].view(8, 8, -1)
    assert torch.equal(grid[::2, ::2].reshape(16, -1), src.pos_embed[0, 1:])
    assert torch.equal(dst.pos_embed[0, 0], src.pos_embed[0, 0])
    # and the resized model computes what the source computes with on-the-fly nearest resizing
    with torch.no_grad():
        torch.testing.assert_close(dst(x_(t=8, size=64)), src(x_(t=8, size=64)), atol=1e-5, rtol=0)


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = _Evil()
    _Evil.marker = str(marker)
    path = tmp_path / "evil.pth"
    torch.save({"model": tiny_timesformer(TINY, 0, **JITTER).state_dict(), "payload": evil}, path)
    with pytest.raises(UserError, match="could run code"):
        load_checkpoint(tiny_timesformer(TINY, 1, **JITTER), path)
    assert not marker.exists()


@pytest.mark.parametrize("content,msg", [(b"", "empty file"), (b"not a checkpoint at all", "cannot read")])
def test_unreadable_files(tmp_path, content, msg):
    p = tmp_path / "bad.pth"
    p.write_bytes(content)
    with pytest.raises(UserError, match=msg):
        load_checkpoint(tiny_timesformer(TINY, 0, **JITTER), p)
    with pytest.raises(UserError, match="does not exist"):
        load_checkpoint(tiny_timesformer(TINY, 0, **JITTER), tmp_path / "nope.pth")


def test_init_from_timm_image_vit(tmp_path):
    torch.manual_seed(0)
    vit = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=64, depth=3, num_heads=4, num_classes=1000).eval()
    path = tmp_path / "vit.pth"
    torch.save(vit.state_dict(), path)
    m = video_ats.create_model("timesformer", **{**TINY, "num_frames": 1}).eval()
    report = load_checkpoint(m, path)
    assert any("image ViT" in n for n in report["notes"])
    blk = m.blocks[1]
    assert torch.equal(blk.temporal_attn.qkv.weight, vit.blocks[1].attn.qkv.weight)
    assert torch.equal(blk.temporal_fc.weight, torch.zeros_like(blk.temporal_fc.weight))
    # with temporal_fc = 0 and one frame, TimeSformer is exactly the image ViT
    img = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ours = m.forward_features(img[:, :, None])
        theirs = vit.forward_head(vit.forward_features(img), pre_logits=True)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_init_from_safetensors_vit(tmp_path):
    from safetensors.torch import save_file
    vit = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=64, depth=3, num_heads=4, num_classes=10)
    path = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(path))
    m = video_ats.create_model("timesformer", **TINY)
    load_checkpoint(m, path)
    assert torch.equal(m.blocks[2].mlp.fc1.weight, vit.blocks[2].mlp.fc1.weight)


def test_bytes_damaged_inside_a_tensor_are_refused_not_loaded(tmp_path):
    """torch.load does not check the zip's CRCs: without our check, a flipped byte in a weight loads as a
    silently different model."""
    model = tiny_timesformer(TINY, 0, **JITTER)
    path = tmp_path / "ckpt.pth"
    save_state({"model": model.state_dict()}, path)
    data = bytearray(path.read_bytes())
    weight = model.state_dict()["blocks.0.mlp.fc1.weight"]
    needle = weight.flatten()[:8].numpy().tobytes()          # the tensor's first bytes, stored uncompressed
    at = bytes(data).find(needle)
    assert at > 0
    data[at + 3] ^= 0x40
    path.write_bytes(bytes(data))
    loaded = torch.load(path, map_location="cpu", weights_only=True)["model"]["blocks.0.mlp.fc1.weight"]
    assert not torch.equal(loaded, weight)                    # torch itself loads the damaged value
    with pytest.raises(UserError, match="damaged.*checksum"):
        load_checkpoint(tiny_timesformer(TINY, 1, **JITTER), path)
    save_state({"model": model.state_dict()}, path)           # an intact file still loads exactly
    other = tiny_timesformer(TINY, 1, **JITTER)
    load_checkpoint(other, path)
    assert torch.equal(other.state_dict()["blocks.0.mlp.fc1.weight"], weight)
