"""Analysis tools on top of the engine: GFLOPs / kept-token profiles, K calibration to a GFLOPs
budget, ATS-vs-baseline sweeps, and the paper-style pictures (token overlays, kept-token histograms,
accuracy-vs-GFLOPs curves). See ``docs/analysis.md``."""
