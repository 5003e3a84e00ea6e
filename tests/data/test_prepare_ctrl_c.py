"""Ctrl-C during ``prepare --workers N`` is the parent's to handle (exit 130, finished shards kept): a pool
worker ignores SIGINT, as DataLoader workers do; it printed "Process ForkProcess-4: Traceback ... KeyboardInterrupt"."""

from __future__ import annotations

import signal
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import pytest

from masklab.data.shards.workers import init_worker

pytest.importorskip("tokenizers")


def _sigint_handler() -> object:
    return signal.getsignal(signal.SIGINT)


def test_pool_workers_ignore_ctrl_c():
    from masklab.tokenizers.text import TextTokenizer

    tok = TextTokenizer.train(["the team and the match", "a goal"], "char", vocab_size=40)
    ctx = get_context("fork")
    with ProcessPoolExecutor(1, mp_context=ctx, initializer=init_worker, initargs=(tok.to_json(),)) as pool:
        assert pool.submit(_sigint_handler).result() == signal.SIG_IGN
