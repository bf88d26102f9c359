"""The thin layer that puts the ATS sampler into a backbone's attention (both backbones use it).

At an ATS block the backbone has padded per-frame groups whose slot 0 is a CLS query. Each frame's CLS
attention row and the per-head value norms give every space-time token a significance score; the
scores are normalised over the whole clip (all frames together) and sampled per clip.
"""
from __future__ import annotations

import torch

from typing import Dict, List, Optional

from ..ats import ATSConfig, scores_from_value_norms
from ..errors import UserError
from ..tokens import Groups, TokenSet

# Backbones wrap ATS's own work (scores, sampling, gathers, index bookkeeping) in this profiler label,
# so benchmarks can report the sampler's share of the forward.
ATS_PROFILE_LABEL = "video_ats.ats"


def select_tokens(ts: TokenSet, frames: Groups, cls_attn: torch.Tensor, v: torch.Tensor,
                  cfg: ATSConfig, block: int) -> torch.Tensor:
    """Kept mask (M,) over the packed tokens of ``ts``.

    frames:   ts.groups("frame", lead=1) — one group per (clip, frame), CLS in slot 0.
    cls_attn: (G, H, L) attention probabilities of each frame's CLS query over its frame's slots.
    v:        (G, H, L, d) values in the same layout.
    """
    heads = cls_attn.shape[1]
    a_tok = frames.unpad(cls_attn.transpose(1, 2))                       # (M, H)
    n_tok = frames.unpad(v.float().norm(dim=-1).transpose(1, 2))         # (M, H)
    both, valid, flat = ts.per_clip(torch.cat([a_tok, n_tok], dim=1))    # (B, N, 2H)
    a, norms = both[..., :heads].transpose(1, 2), both[..., heads:].transpose(1, 2)
    scores = scores_from_value_norms(a, norms, cfg.score_mode, valid)    # (B, N), Σ over a clip = 1
    kept = cfg.select(scores, block, valid)
    return kept.view(-1)[flat]


class TokenSampling:
    """What both backbones share about ATS: the validated configuration (``self.ats``), switching it
    (``set_ats``), the sampler of a given block, and the per-clip kept counts of the last forward.
    ``class_names`` (label order) is set by checkpoints that carry them (Hugging Face ``id2label``,
    this project's training checkpoints); None when unknown."""

    depth: int
    class_names: Optional[List[str]] = None

    def _init_ats(self, ats) -> None:
        self.ats: Optional[ATSConfig] = ATSConfig.from_any(ats, self.depth)
        self.last_kept_tokens: Dict[int, torch.Tensor] = {}

    def set_ats(self, ats) -> None:
        """Replace the ATS configuration (None turns ATS off); validated against the depth."""
        cfg = ATSConfig.from_any(ats, self.depth)
        if cfg is not None and getattr(self, "tome", None) is not None:
            raise UserError("ATS and ToMe cannot be on at the same time; turn ToMe off first (tome=None)")
        self.ats = cfg

    def ats_at(self, block: int) -> Optional[ATSConfig]:
        """The configuration if ``block`` ends with an ATS step, else None."""
        return self.ats if self.ats is not None and self.ats.num_tokens_at(block) is not None else None
