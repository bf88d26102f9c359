"""The allowed values of every multiple-choice setting, each defined once.

The config validator (:data:`video_ats.engine.config.CHOICES`), the commands' ``choices=`` and the code
that implements a setting all read the tuple here, so a value cannot be accepted in one place and
refused in another. This module imports nothing: the config and the command-line parsers load it
without pulling in torch or the video decoders.
"""

# How a video's views are combined into one score vector (test.combine):
# softmax_mean averages the views' softmax scores (MMAction2, the ATS paper); logit_sum adds the logits
# (PySlowFast).
COMBINE_MODES = ("softmax_mean", "logit_sum")

# Where the temporal test clips sit (test.clip_position): start puts clip i at delta·i/num_clips, so a
# single clip starts at frame 0 (PySlowFast, TimeSformer, X-ViT); center centres clip i in the i-th of
# num_clips equal segments (MMAction2).
CLIP_POSITIONS = ("start", "center")

# How a clip's frames are spread over its window (data.frame_spacing): pyslowfast is linspace over the
# window (what the official checkpoints were trained with); stride takes exactly every rate-th frame.
FRAME_SPACINGS = ("pyslowfast", "stride")

# How test frames are scaled (test.resize): decoder scales while decoding (fast); pyslowfast decodes at
# full size and then interpolates bilinearly (the official evaluation's pixels).
RESIZE_MODES = ("decoder", "pyslowfast")

# Mixed-precision dtypes a config may ask for (train.amp_dtype), and the precisions a forward runs in.
AMP_DTYPES = ("float16", "bfloat16")
PRECISIONS = ("float32",) + AMP_DTYPES

# Learning-rate schedules (train.scheduler): timm's, or none (constant).
SCHEDULERS = ("cosine", "step", "multistep", "none")
