"""The thin layer that puts the ATS sampler into a backbone's attention (both backbones use it).

At an ATS block the backbone has padded per-frame groups whose slot 0 is a CLS query. Each frame's CLS
attention row and the per-head value norms give every space-time token a significance score; the
scores are normalised over the whole clip (all frames together) and sampled per clip
(:func:`sample_attention`: score → keep → kept queries → attention rows, one function for both).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import torch
from torch.profiler import record_function

from ..ats import ATSConfig, NumTokens, scores_from_value_norms
from ..errors import UserError
from ..tokens import Groups, TokenSet
from .layers import Attention, attention_row, merge_heads

# The ATS step wraps its own work (scores, sampling, gathers, index bookkeeping) in this profiler
# label, so benchmarks can report the sampler's share of the forward.
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


@dataclass(frozen=True)
class TokenSampler:
    """ATS at one block: the configuration and the block, so ``num_tokens`` (K) is that block's."""
    cfg: ATSConfig
    block: int

    @property
    def num_tokens(self) -> NumTokens:
        return self.cfg.num_tokens_at(self.block)

    def select(self, ts: TokenSet, frames: Groups, cls_attn: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Kept mask (M,) over the packed tokens of ``ts`` (see :func:`select_tokens`)."""
        return select_tokens(ts, frames, cls_attn, v, self.cfg, self.block)


class Sampled(NamedTuple):
    ts: TokenSet              # the kept tokens (features: the kept rows of ``x_tok``)
    rows: torch.Tensor        # (G, 1 + longest kept frame, D): attention output of CLS + kept queries
    extra: Any                # what ``after`` returned (None without it)


def sample_attention(sampler: TokenSampler, attn: Attention, ts: TokenSet, frames: Groups,
                     q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: Optional[torch.Tensor],
                     x_tok: torch.Tensor, q_tok: torch.Tensor, q_cls: torch.Tensor,
                     after: Optional[Callable[[TokenSet], Any]] = None) -> Sampled:
    """The ATS step of both backbones, at a per-frame attention whose slot 0 is a CLS query.

    Scores every token from its frame's CLS row of the attention (normalised over the clip), keeps a
    subset per clip, and computes the attention output only for the frame CLS + kept queries: rows of
    the same attention matrix (the keys stay all tokens that entered the block; nothing is recomputed).

    frames, q, k, v, key_mask: the attention over ``frames`` = ts.groups("frame", lead=1), (G, H, L, d).
    x_tok (M, D): the features the kept tokens carry on; q_tok (M, D) and q_cls (G, 1, D): the queries
    before the head split. ``after(kept_set)`` is the backbone's bookkeeping for the new token set
    (its next groups or layout), run under the same profiler label; its result is ``extra``.
    """
    g, heads = q.shape[:2]
    d = q_tok.shape[-1]
    with record_function(ATS_PROFILE_LABEL):
        cls_attn = attention_row(q[:, :, 0], k, key_mask)
        kept = sampler.select(ts, frames, cls_attn, v).nonzero().squeeze(1)    # the one host sync here
        out = ts.keep(kept, x=x_tok)
        q_kept = out.groups("frame", lead=1).pad(q_tok.index_select(0, kept), q_cls)
        q_kept = q_kept.view(g, -1, heads, d // heads).transpose(1, 2)
        extra = after(out) if after is not None else None
    return Sampled(out, merge_heads(attn.attend(q_kept, k, v, key_mask)), extra)


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
