"""Run ``prepare_corpus`` as a process the tests can SIGKILL.

python tests/data/prepare_script.py CORPUS OUT --tokenizer TOK [--shard-delay 0.2] [--workers 2]
"""

import argparse
import time

from masklab.data.shards.prepare import prepare_corpus

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("corpus")
    parser.add_argument("out")
    parser.add_argument("--tokenizer", default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shard-delay", type=float, default=0.0)
    args = parser.parse_args()
    # The delay only slows the run so the test can kill it between shards; it touches no bytes.
    delay = (lambda k: time.sleep(args.shard_delay)) if args.shard_delay else None
    prepare_corpus(args.corpus, args.out, tokenizer=args.tokenizer, workers=args.workers, shard_mb=0.002,
                   vocab_size=60, progress=False, on_shard=delay)  # fmt: skip
