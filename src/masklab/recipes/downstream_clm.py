"""``embed`` and ``probe`` for causal LM runs (GPT): one feature row per document, the final hidden state of
its last real token (:meth:`masklab.models.clm.GPT.embed`: the only position that has read the whole
document under causal attention). Documents longer than the context are cut to their first ``context``
tokens (a note says how many); a document that encodes to no token is refused, naming it. A probe needs
labelled documents (class subfolders or a ``label`` field)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from masklab.eval.probe import ProbeResult, probe_features
from masklab.recipes.embedding import Embedding
from masklab.recipes.progress import Progress, batches, say


def _corpus(run: str | Path, data: str | None, skip_bad: bool):
    from masklab.data.text import UNREADABLE, load_text_corpus
    from masklab.recipes.clm import DEFAULT_DATA, LM_INFO, read_settings
    from masklab.recipes.embedding import note_skipped
    from masklab.train.run import Run

    info = Run(run).read_sidecar(LM_INFO)
    spec = data or info.get("data") or DEFAULT_DATA
    source, settings = read_settings(spec, info)  # the run's text field (a prepared folder: its source text)
    corpus = load_text_corpus(source, skip_bad=skip_bad, **settings)
    note_skipped([s.removesuffix(f" {UNREADABLE}") for s in corpus.skipped if s.endswith(UNREADABLE)], "text file")
    return spec, corpus


def _blocks(tokenizer, corpus, context: int, spec: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Documents -> ``ids`` long ``(N, T)`` right-padded and ``padding`` bool ``(N, T)`` (True = padded). A
    document longer than ``context`` keeps its first ``context`` tokens (how many were cut is said on stderr);
    one that encodes to no token is refused, naming it (its feature would be no token's)."""
    encoded = [e.ids for e in tokenizer.encode_batch(list(corpus.texts), add_special_tokens=False)]
    empty = [i for i, e in enumerate(encoded) if not e]
    if empty:
        where = [f"{i}" + (f" ({corpus.sources[i]})" if corpus.sources else "") for i in empty[:5]]
        more = f" and {len(empty) - 5} more" if len(empty) > 5 else ""
        one = len(empty) == 1
        raise ValueError(f"--data {spec}: document{'' if one else 's'} {', '.join(where)}{more} "
                         f"encode{'s' if one else ''} to no token with the run's tokenizer (nothing for the GPT to "
                         f"read); remove or fix {'it' if one else 'them'}")  # fmt: skip
    cut = sum(len(e) > context for e in encoded)
    if cut:
        longest = max(map(len, encoded))
        print(f"masklab: note: {cut} of {len(encoded)} documents are longer than the model reads ({context} tokens; "
              f"the longest has {longest}): each keeps its first {context}", file=sys.stderr)  # fmt: skip
    encoded = [e[:context] for e in encoded]
    width = max(len(e) for e in encoded)
    ids = torch.zeros(len(encoded), width, dtype=torch.long)
    padding = torch.ones(len(encoded), width, dtype=torch.bool)
    for i, e in enumerate(encoded):
        ids[i, : len(e)] = torch.tensor(e)
        padding[i, : len(e)] = False
    return ids, padding


def _features(model, ids: torch.Tensor, padding: torch.Tensor, batch_size: int, progress: Progress | None,
              stage: str) -> np.ndarray:  # fmt: skip
    device = next(model.parameters()).device
    chunks = []
    with torch.inference_mode():
        for part in batches(len(ids), batch_size, progress, stage):
            chunks.append(model.embed(ids[part].to(device), padding[part].to(device)).float().cpu())
    return torch.cat(chunks).numpy()


def embed_clm(run: str | Path, *, data: str | None = None, batch_size: int | None = None, device: str = "auto",
              skip_bad: bool = False, progress: Progress | None = None) -> Embedding:  # fmt: skip
    """Features ``(N, D)`` float32 of every document of ``data`` (default: the run's), sources ``data[i]``,
    labels when the data has them."""
    from masklab.core.device import resolve_device
    from masklab.recipes.clm import load_lm_run

    model, tokenizer, _ = load_lm_run(run, str(resolve_device(device)))
    say(progress, "reading and tokenising the documents")
    spec, corpus = _corpus(run, data, skip_bad)
    ids, padding = _blocks(tokenizer, corpus, model.config.context, spec)
    features = _features(model, ids, padding, batch_size or 32, progress, f"encoding {len(ids)} documents")
    return Embedding.of(features, [f"{spec}[{i}]" for i in range(len(corpus))], corpus.labels, corpus.label_names)


def probe_clm(run: str | Path, *, data: str | None = None, max_examples: int | None = None, seed: int = 0,
              batch_size: int | None = None, device: str = "auto", skip_bad: bool = False,
              progress: Progress | None = None) -> list[ProbeResult]:  # fmt: skip
    """Linear-probe and k-NN accuracy of the frozen features on a stratified 80/20 split of labelled documents,
    next to a random-init GPT of the same shape and a bag-of-tokens baseline."""
    from masklab.core.device import resolve_device
    from masklab.data.text import stratified_split
    from masklab.models.clm import GPT
    from masklab.recipes.clm import load_lm_run

    model, tokenizer, _ = load_lm_run(run, str(resolve_device(device)))
    say(progress, "reading the documents")
    spec, corpus = _corpus(run, data, skip_bad)
    if corpus.labels is None:
        raise ValueError(f"--data {spec} has no labels; a probe needs class subfolders or a .jsonl 'label' field "
                         "(embed works without labels)")  # fmt: skip
    train_idx, test_idx = stratified_split(corpus.labels, 0.2, seed)
    if max_examples is not None:
        keep = torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(seed))[:max_examples]
        train_idx = sorted(train_idx[i] for i in keep.tolist())
    labels = np.asarray(corpus.labels)
    say(progress, f"tokenising {len(corpus)} documents")
    ids, padding = _blocks(tokenizer, corpus, model.config.context, spec)
    torch.manual_seed(seed)
    random_model = GPT(model.config).to(next(model.parameters()).device).eval()
    rows = []
    for name, m in (("GPT decoder", model), ("random decoder", random_model)):
        feats = _features(m, ids, padding, batch_size or 32, progress, f"{name}: encoding {len(ids)} documents")
        say(progress, f"{name}: fitting the linear probe and k-NN")
        rows.append(probe_features(name, feats[train_idx], labels[train_idx], feats[test_idx], labels[test_idx],
                                   seed=seed))  # fmt: skip
    say(progress, "bag of tokens: fitting the linear probe and k-NN")
    counts = np.zeros((len(ids), model.config.vocab_size), dtype=np.float32)  # (N, V) counts of real tokens
    np.add.at(counts, (np.nonzero(~padding.numpy())[0], ids[~padding].numpy()), 1.0)
    rows.append(probe_features("bag of tokens", counts[train_idx], labels[train_idx], counts[test_idx],
                               labels[test_idx], seed=seed))  # fmt: skip
    print(f"{spec}: probe trained on {len(train_idx)} documents, scored on {len(test_idx)} held-out documents")
    return rows
