"""``masklab export-hf RUN DIR``: a run as a Hugging Face folder (:func:`masklab.recipes.export.export_hf`)."""

from __future__ import annotations

import argparse


def register(parser: argparse.ArgumentParser, name: str, rest: list[str]) -> None:
    parser.description = (
        "Write RUN as a folder transformers loads offline with from_pretrained(DIR): an mae run as "
        "ViTMAEForPreTraining (+ preprocessor_config.json with the run's pixel mean/std), an mlm run as "
        "BertForMaskedLM (RobertaForMaskedLM for RoBERTa positions), a clm run as GPT2LMHeadModel; text runs "
        "also get tokenizer.json. A setting the Hugging Face class cannot represent is refused, naming it. DIR is "
        "new, empty, or an earlier export-hf folder of the same class (replaced as a whole); a folder holding "
        "anything else (a run, prepared data, other files) is refused."
    )
    parser.add_argument("run", metavar="RUN", help="training run directory (mae, mlm or clm)")
    parser.add_argument("folder", metavar="DIR", help="output folder: new, empty, or an earlier export of its class")
    parser.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    import sys

    from masklab.recipes.export import export_hf

    result = export_hf(args.run, args.folder)
    for note in result["notes"]:
        print(f"masklab: note: {note}", file=sys.stderr)
    print(f"masklab: wrote {result['architecture']} folder {result['folder']}")
    return 0
