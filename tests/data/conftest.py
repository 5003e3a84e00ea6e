"""A small synthetic corpus shared by the data tests (many short documents, so several shards)."""

import random

import pytest

WORDS = ["the", "team", "match", "goal", "bank", "shares", "profit", "market", "rates", "firm", "unbelievable",
         "coach", "league", "striker", "season", "cup", "and", "of", "a", "to"]  # fmt: skip


def write_corpus(path, docs: int = 400, seed: int = 0):
    rng = random.Random(seed)
    lines = []
    for _ in range(docs):
        lines.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 40))) + ".")
        if rng.random() < 0.05:
            lines.append("")  # blank lines are not documents
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt")
