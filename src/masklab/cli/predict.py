"""``masklab predict RUN INPUT``: a fine-tuned classifier's predictions for new inputs
(:func:`masklab.recipes.prediction.predict`)."""

from __future__ import annotations

import argparse

from masklab.cli.progress import add_quiet, reporting


def register(parser: argparse.ArgumentParser, name: str, rest: list[str]) -> None:
    parser.description = (
        "Apply the classifier that `masklab finetune` wrote (RUN/finetune, or that folder itself) to new inputs. "
        "Images: an image file, a folder of images, .npy/.npz or builtin:NAME. Text: a .txt file (one document "
        "per line), a .csv with a text column, or a folder of .txt files. Series: .npy/.npz, a long-format "
        ".csv/.parquet or builtin:NAME (as pretrain series reads them). Writes a CSV: row, source, prediction "
        "and the probability of each class."
    )
    parser.add_argument("run", metavar="RUN", help="fine-tune output directory (or the run it was fine-tuned from)")
    parser.add_argument("input", metavar="INPUT", help="images or text to classify (see above)")
    parser.add_argument("-o", "--output", default="predictions.csv", help="CSV to write (default predictions.csv)")
    parser.add_argument("--text-column", default="text", help="column of a .csv input holding the text (default text)")
    parser.add_argument("--batch-size", type=int, default=None, help="inputs per forward (default: per model family)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="leave out unreadable images (and images smaller than one patch), named once")  # fmt: skip
    add_quiet(parser)
    parser.set_defaults(func=_predict)


def _predict(args: argparse.Namespace) -> int:
    with reporting(args, "predict") as progress:
        from masklab.recipes.prediction import predict

        result = predict(args.run, args.input, output=args.output, batch_size=args.batch_size, device=args.device,
                         skip_bad=args.skip_bad, text_column=args.text_column, progress=progress)  # fmt: skip
    print(f"masklab: {result.summary()}; wrote {args.output}")
    return 0
