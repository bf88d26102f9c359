"""The thin layer that puts the ATS sampler into a backbone's attention (both backbones use it).

At an ATS block the backbone has per-frame attention groups whose lead slot is a CLS query. Each
frame's CLS attention row and the per-head value norms give every space-time token a significance
score; the scores are normalised over the whole clip (all frames together) and sampled per clip
(:func:`sample_attention`: score → keep → kept queries → attention rows, one function for both).

Host syncs: an ATS block reads the device exactly once — the kept counts per frame and per spatial
position of the selected tokens (:meth:`TokenSet.select`), from which the host knows every shape that
follows (the kept indices, the next groups, the attention layout, the next sampler's grid). Scores,
selection and index maps stay on the device. ``tests/test_host_syncs.py`` counts this.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import torch
from torch.profiler import record_function

from ..ats import ATSConfig, NumTokens, autocast_off, scores_from_value_norms
from ..errors import UserError
from ..tokens import Groups, TokenSet
from .layers import Attention, lead_attention

# The ATS step wraps its own work (scores, sampling, gathers, index bookkeeping) in this profiler
# label, so benchmarks can report the sampler's share of the forward.
ATS_PROFILE_LABEL = "video_ats.ats"


def select_tokens(ts: TokenSet, cls_attn: torch.Tensor, value_norms: torch.Tensor,
                  cfg: ATSConfig, block: int) -> torch.Tensor:
    """Kept mask (M,) over the packed tokens of ``ts``.

    cls_attn:    (M, H) attention probability of each token's frame CLS query to that token, per head.
    value_norms: (M, H) per-head norms of the tokens' values.
    Both float32 (the scores, CDF and sampling are float32 under autocast too).
    """
    heads = cls_attn.shape[1]
    with autocast_off(cls_attn.device):
        both, valid, flat = ts.per_clip(torch.cat([cls_attn.float(), value_norms.float()], dim=1))   # (B, N, 2H)
        a, norms = both[..., :heads].transpose(1, 2), both[..., heads:].transpose(1, 2)
        scores = scores_from_value_norms(a, norms, cfg.score_mode, valid)    # (B, N), Σ over a clip = 1
        kept = cfg.select(scores, block, valid)
    return kept.view(-1)[flat]


@dataclass(frozen=True)
class TokenSampler:
    """ATS at one block: the configuration and the block, so ``num_tokens`` (K) is that block's."""
    cfg: ATSConfig
    block: int

    @property
    def num_tokens(self) -> NumTokens:
        return self.cfg.num_tokens_at(self.block)

    def select(self, ts: TokenSet, cls_attn: torch.Tensor, value_norms: torch.Tensor) -> torch.Tensor:
        """Kept mask (M,) over the packed tokens of ``ts`` (see :func:`select_tokens`)."""
        return select_tokens(ts, cls_attn, value_norms, self.cfg, self.block)


class Sampled(NamedTuple):
    ts: TokenSet              # the kept tokens (features: the kept rows of ``x_tok``)
    out: torch.Tensor         # (M', D) attention output of the kept queries, packed
    out_cls: torch.Tensor     # (G, 1, D) attention output of each frame's CLS query
    extra: Any                # what ``after`` returned (None without it)


def sample_attention(sampler: TokenSampler, attn: Attention, ts: TokenSet, frames: Groups,
                     qkv: torch.Tensor, qkv_cls: torch.Tensor, x_tok: torch.Tensor,
                     after: Optional[Callable[[TokenSet], Any]] = None) -> Sampled:
    """The ATS step of both backbones, at a per-frame attention whose lead slot is a CLS query.

    Scores every token from its frame's CLS row of the attention (normalised over the clip), keeps a
    subset per clip, and computes the attention output only for the frame CLS + kept queries: rows of
    the same attention matrix (the keys stay all tokens that entered the block; nothing is recomputed).

    frames: ts.groups("frame", lead=1); qkv (M, 3D): the packed q|k|v rows of the tokens of ``ts``;
    qkv_cls (G, 1, 3D): each frame's CLS row. x_tok (M, D): the features the kept tokens carry on.
    ``after(kept_set)`` is the backbone's bookkeeping for the new token set (its next groups or
    layout), run under the same profiler label; its result is ``extra``.
    """
    heads, d = attn.num_heads, qkv.shape[-1] // 3
    with record_function(ATS_PROFILE_LABEL):
        with autocast_off(qkv.device):                       # scores in float32 whatever the autocast
            per_head = lambda rows: rows.reshape(rows.shape[0], heads, -1)      # noqa: E731
            cls_attn = lead_attention(per_head(qkv_cls[:, 0, :d]), per_head(qkv[:, d:2 * d]),
                                      per_head(qkv_cls[:, 0, d:2 * d]), frames)          # (M, H)
            norms = per_head(qkv[:, 2 * d:].float()).norm(dim=-1)                      # (M, H)
            kept = sampler.select(ts, cls_attn, norms)
        idx, host = ts.select(kept)                          # the one device→host read of the block
        out = ts.keep(idx, x=x_tok, host=host)
        queries = (out.groups("frame", lead=1), qkv[:, :d].index_select(0, idx), qkv_cls[..., :d])
        extra = after(out) if after is not None else None
    o, o_cls = attn.attend_groups(frames, qkv, qkv_cls, queries=queries)
    return Sampled(out, o, o_cls, extra)


class TokenSampling:
    """What both backbones share about ATS: the validated configuration (``self.ats``), switching it
    (``set_ats``), the sampler of a given block, and what the last forward kept: per-clip counts
    (``last_kept_tokens``) and positions (``last_kept_positions``) after every ATS (or ToMe) block.
    ``class_names`` (label order) is set by checkpoints that carry them (Hugging Face ``id2label``,
    this project's training checkpoints); None when unknown."""

    depth: int
    class_names: Optional[List[str]] = None

    def _init_ats(self, ats) -> None:
        self.ats: Optional[ATSConfig] = ATSConfig.from_any(ats, self.depth)
        self._start_record()

    def set_ats(self, ats) -> None:
        """Replace the ATS configuration (None turns ATS off); validated against the depth."""
        cfg = ATSConfig.from_any(ats, self.depth)
        if cfg is not None and getattr(self, "tome", None) is not None:
            raise UserError("ATS and ToMe cannot be on at the same time; turn ToMe off first (tome=None)")
        self.ats = cfg

    def ats_at(self, block: int) -> Optional[ATSConfig]:
        """The configuration if ``block`` ends with an ATS step, else None."""
        return self.ats if self.ats is not None and self.ats.num_tokens_at(block) is not None else None

    def sampler_at(self, block: int) -> Optional[TokenSampler]:
        """The sampler of ``block`` (its K resolved) if the block ends with an ATS step, else None."""
        return TokenSampler(self.ats, block) if self.ats_at(block) is not None else None

    # -- what the last forward kept -------------------------------------------------------------------
    def _start_record(self) -> None:
        """Called at the start of every forward: new (empty) records."""
        self.last_kept_tokens: Dict[int, torch.Tensor] = {}
        self._kept_index: Dict[int, Tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def _record_kept(self, block: int, ts: TokenSet) -> None:
        """``ts`` is what is left after ``block`` (an ATS or ToMe block)."""
        self.last_kept_tokens[block] = ts.num_tokens.detach()
        self._kept_index[block] = (ts.clip, ts.t, ts.p)

    @property
    def last_kept_positions(self) -> Dict[int, List[torch.Tensor]]:
        """Block -> one (n, 2) long CPU tensor [t, p] per clip of the last forward: the positions of the
        tokens that clip has left after that ATS (or ToMe) block, in (t, p) order; n is the clip's
        entry of ``last_kept_tokens[block]``."""
        out = {}
        for block, (clip, t, p) in self._kept_index.items():
            pos, clip = torch.stack([t, p], dim=1).cpu(), clip.cpu()
            out[block] = [pos[clip == c] for c in range(self.last_kept_tokens[block].numel())]
        return out
