"""`video-ats export-hf`: a checkpoint as a Hugging Face transformers TimeSformer folder."""
from __future__ import annotations

HELP = "write a TimeSformer checkpoint as a Hugging Face transformers folder (config.json + model.safetensors)"


def add_arguments(parser) -> None:
    parser.add_argument("--checkpoint", required=True,
                        help="weights: a training checkpoint of this project (its recipe is inside), or any "
                             "checkpoint load_checkpoint reads together with --config")
    parser.add_argument("--out", required=True, help="folder to write (created; config.json and model.safetensors "
                                                     "in it are replaced)")
    parser.add_argument("--config", help="YAML recipe that builds the model (default: the recipe stored in the "
                                         "checkpoint)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted config overrides, e.g. model.num_classes=400 model.ats=null")


def run(args) -> int:
    from ..checkpoint import load_checkpoint, read_checkpoint
    from ..engine import config
    from ..engine.builders import build_model, check_creatable_dir, model_data_settings
    from ..errors import UserError
    from ..hf import export_hf, resolve_hf

    check_creatable_dir(args.out, "--out folder")
    if resolve_hf(args.checkpoint) is not None:
        raise UserError(f"{args.checkpoint} already is a Hugging Face folder")
    obj = read_checkpoint(args.checkpoint)
    cfg = config.load_config(args.config, args.overrides) if args.config else config.stored_config(obj, args.overrides)
    if cfg is None:
        raise UserError(f"{args.checkpoint} carries no recipe (not a training checkpoint of this project): pass "
                        "--config with the recipe that built it")
    model = build_model(cfg, load_pretrained=False, ats=None)       # dense: ATS is recorded, not baked in
    report = load_checkpoint(model, obj)
    names = model.class_names
    if names is None or names == [str(i) for i in range(len(names))]:
        names = None                                                   # placeholders: LABEL_i, as transformers
    ats = cfg["model"]["ats"]
    settings = model_data_settings(cfg, model)
    extra = {k: settings[k] for k in ("num_frames", "sampling_rate", "crop_size", "mean", "std")}
    extra["source"] = {"checkpoint": args.checkpoint, "model": cfg["model"]["name"]}
    paths = export_hf(model, args.out, class_names=names, ats=ats, extra=extra)
    for note in report.get("notes", []):
        print(f"note: {note}")
    print(f"wrote {paths['config']} and {paths['weights']} ({model.num_classes} classes"
          f"{', named' if names else ''}; dense weights{'; ATS settings in config.json video_ats_ats' if ats else ''})")
    print(f"load it with transformers: TimesformerForVideoClassification.from_pretrained({args.out!r}); "
          f"with ATS here: video_ats.from_pretrained({args.out!r}, ats=\"recorded\")")
    return 0
