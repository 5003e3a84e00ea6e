"""What an MLM run is used for: pooled features (``embed_mlm``), frozen-feature probes (``probe_mlm``),
fine-tuning a classifier (``finetune_mlm``) and fill-mask (``fill``, also on a Hugging Face BERT folder).
Features are ``(N, D)`` float32, mean-pooled over the real tokens (``padding`` True = padded), no masking."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from masklab.core.device import resolve_device
from masklab.eval.probe import ProbeResult, probe_features
from masklab.recipes.embedding import Embedding
from masklab.recipes.mae import recorded_spec
from masklab.recipes.mae_tasks import check_out_not_in_data, limit_examples
from masklab.recipes.mlm import DEFAULT_DATA, TEXT_INFO, encode_docs, load_mlm_run, text_corpus
from masklab.recipes.progress import Progress, batches, say, silent
from masklab.train.run import Run


def embed_blocks(model, blocks, *, batch_size: int = 64, device: str = "cpu", progress: Progress | None = None,
                 stage: str = "encoding documents") -> np.ndarray:  # fmt: skip
    """Pooled features ``(N, D)`` float32 of encoded documents; deterministic (no masking). ``progress`` hears
    ``stage`` per batch."""
    feats = []
    model.eval()
    with torch.no_grad():
        for part in batches(len(blocks), batch_size, progress, stage):
            ids, padding = blocks.ids[part].to(device), blocks.padding[part].to(device)
            feats.append(model.pooled(model(ids, padding), padding).float().cpu())
    return torch.cat(feats).numpy()


def embed_mlm(run: str | Path, *, data: str | None = None, batch_size: int | None = None, device: str = "auto",
              skip_bad: bool = False, progress: Progress | None = None) -> Embedding:  # fmt: skip
    """Mean-pooled last hidden states ``(N, D)`` of every document of ``data`` (default: the run's); sources
    ``FILE:LINE`` (1-based) of a .jsonl or per-line .txt, ``FILE`` of a per-file document, else ``data[i]`` (the
    i-th document as read); labels (class names) when the data has them."""
    dev = str(resolve_device(device))
    model, tokenizer, info = load_mlm_run(run, dev)
    say(progress, f"reading {data or info.get('data') or DEFAULT_DATA}")
    spec, corpus = text_corpus(data, info, skip_bad=skip_bad, where=Path(run) / TEXT_INFO)
    say(progress, f"tokenising {len(corpus)} documents")
    blocks = encode_docs(tokenizer, corpus.texts, info.get("seq_len", 128), what="documents embedded")
    features = embed_blocks(model, blocks, batch_size=batch_size or 64, device=dev, progress=progress,
                            stage=f"encoding {len(blocks)} documents")  # fmt: skip
    sources = corpus.sources or [f"{spec}[{i}]" for i in range(len(corpus))]  # FILE:LINE where the files say
    return Embedding.of(features, sources, corpus.labels, corpus.label_names)


def split_documents(corpus, spec: str, info: dict[str, Any], seed: int) -> tuple[list[int], list[int], str]:
    """``(train, test, what the test documents are)``. On the run's own built-in data the test documents are the
    pretraining's held-out ones (``holdout_split`` with text.json's ``holdout`` and ``seed``: random, not
    stratified), the rest train, when both hold every class. Otherwise a stratified, seeded 80/20 split, and the
    description says the test documents were seen unlabelled in pretraining where that is so (the run's own
    data read from a path is held out by position in the token stream, not by document)."""
    from masklab.data.text import holdout_split, stratified_split

    recorded: str = info.get("data") or ""
    labels = corpus.labels
    same = bool(recorded) and recorded_spec(spec) == recorded_spec(recorded)
    if same and recorded.startswith("builtin:") and info.get("holdout"):
        train, held = holdout_split(len(corpus), info["holdout"], info.get("seed", 0))
        if {labels[i] for i in held} == {labels[i] for i in train} == set(labels):
            return train, held, f"documents the pretraining held out (text.json holdout {info['holdout']:g})"
    train, test = stratified_split(labels, 0.2, seed, names=corpus.label_names)
    if same:
        return train, test, "documents (a stratified 20%, seen unlabelled in pretraining)"
    return train, test, f"held-out documents (a stratified 20%; the run pretrained on {recorded or DEFAULT_DATA})"


def probe_mlm(run: str | Path, *, data: str | None = None, max_examples: int | None = None, seed: int = 0,
              batch_size: int | None = None, device: str = "auto", skip_bad: bool = False,
              progress: Progress | None = None) -> list[ProbeResult]:  # fmt: skip
    """Linear-probe and k-NN accuracy of the frozen encoder's pooled features on :func:`split_documents`'s test
    documents, next to a random encoder of the same shape and a bag-of-tokens baseline (counts over the
    vocabulary). ``max_examples`` (>= 2) caps train and test together, each keeping its share, as for MAE."""
    from masklab.models.mlm import BertForMLM

    dev = str(resolve_device(device))
    model, tokenizer, info = load_mlm_run(run, dev)
    say(progress, f"reading {data or info.get('data') or DEFAULT_DATA}")
    spec, corpus = text_corpus(data, info, skip_bad=skip_bad, where=Path(run) / TEXT_INFO)
    if corpus.labels is None:
        raise ValueError(f"--data {spec} has no labels; a probe needs class subfolders, a 'label' field or bbc-news")
    train_idx, test_idx, tested = split_documents(corpus, spec, info, seed)
    if max_examples is not None:  # seeded random subsets (the indices are sorted, often by class)
        kept = limit_examples(torch.tensor(train_idx), torch.tensor(test_idx), max_examples, seed)
        train_idx, test_idx = (k.tolist() for k in kept)
    labels = np.asarray(corpus.labels)
    say(progress, f"tokenising {len(train_idx) + len(test_idx)} documents")
    blocks = {
        n: encode_docs(tokenizer, corpus.subset(i).texts, info.get("seq_len", 128), what=f"{n} documents")
        for n, i in (("train", train_idx), ("test", test_idx))
    }
    torch.manual_seed(seed)
    random_model = BertForMLM(model.config).to(dev)
    rows = []
    for name, m in (("MLM encoder", model), ("random encoder", random_model)):
        tx, vx = (embed_blocks(m, blocks[s], batch_size=batch_size or 64, device=dev, progress=progress,
                               stage=f"{name}: encoding {len(blocks[s])} {s} documents") for s in blocks)  # fmt: skip
        say(progress, f"{name}: fitting the linear probe and k-NN")
        rows.append(probe_features(name, tx, labels[train_idx], vx, labels[test_idx], seed=seed))

    def bag(b):  # (N, V) token counts of the real tokens
        counts = np.zeros((len(b), tokenizer.vocab_size), dtype=np.float32)
        np.add.at(counts, (np.nonzero(~b.padding.numpy())[0], b.ids[~b.padding].numpy()), 1.0)
        return counts

    say(progress, "bag of tokens: fitting the linear probe and k-NN")
    tx, vx = bag(blocks["train"]), bag(blocks["test"])
    rows.append(probe_features("bag of tokens", tx, labels[train_idx], vx, labels[test_idx], seed=seed))
    print(f"{spec}: probe trained on {len(train_idx)} documents, scored on {len(test_idx)} {tested}")
    return rows


def finetune_mlm(
    run: str | Path,
    *,
    data: str | None = None,
    task: str = "classify",
    steps: int | None = None,
    epochs: float | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    augment: str | None = None,
    out: str | Path | None = None,
    seed: int = 0,
    device: str = "auto",
    skip_bad: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Fine-tune the whole encoder plus a linear head on labelled documents (tested on :func:`split_documents`'s
    test documents; 3 epochs by default); ``augment`` e.g. ``mask:0.15,tokendrop:0.1``. Writes ``out`` (default
    ``RUN/finetune``, the layout of :mod:`masklab.recipes.finetune_outputs`) and returns its ``metrics.json``
    record (accuracy, class names, confusion matrix)."""
    import dataclasses

    from masklab.core.contract import saved_config
    from masklab.data.text import TextBlocksData
    from masklab.models.mlm import BertForMLM
    from masklab.recipes.common import fit_run
    from masklab.recipes.finetune_outputs import check_restart, default_out, write_finetune_outputs
    from masklab.train import TrainConfig

    if task != "classify":
        raise ValueError(f"--task {task!r} is not supported for mlm runs (supported: classify)")
    dev = str(resolve_device(device))
    pretrained, tokenizer, info = load_mlm_run(run, "cpu")
    target = Run(default_out(run, out))
    say(progress, f"reading {data or info.get('data') or DEFAULT_DATA}")
    spec, corpus = text_corpus(data, info, skip_bad=skip_bad, where=Path(run) / TEXT_INFO)
    check_out_not_in_data(target.path, spec)
    if corpus.labels is None:
        raise ValueError(
            f"--data {spec} has no labels (use class subfolders, a .jsonl 'label' field, or builtin:bbc-news)"
        )
    train_idx, test_idx, tested = split_documents(corpus, spec, info, seed)
    seq_len = info.get("seq_len", 128)
    say(progress, f"tokenising {len(corpus)} documents")
    train = encode_docs(tokenizer, corpus.subset(train_idx).texts, seq_len, corpus.subset(train_idx).labels,
                        what="training documents")  # fmt: skip
    test = encode_docs(tokenizer, corpus.subset(test_idx).texts, seq_len, corpus.subset(test_idx).labels,
                       what="held-out documents")  # fmt: skip
    cfg = dataclasses.replace(pretrained.config, task="classify", num_labels=len(corpus.label_names))
    model = BertForMLM(cfg)
    missing, unexpected = model.load_state_dict(pretrained.state_dict(), strict=False)
    if unexpected or set(missing) - {"classifier.weight", "classifier.bias"}:
        raise ValueError(f"{run}: pretrained weights do not fit (missing {missing}, unexpected {unexpected})")
    batch_size = min(batch_size or 32, len(train))
    steps = steps or max(1, round((epochs or 3.0) * len(train) / batch_size))
    train_cfg = TrainConfig(
        steps=steps, batch_size=batch_size,
        lr=lr or 5e-4,  # small BERTs fine-tuned for ~3 epochs: 5e-4 reached ~90% on BBC even from scratch
        warmup_steps=steps // 10, weight_decay=0.01, betas=(0.9, 0.999), seed=seed, device=device,
        log_every=max(1, min(20, steps // 10)), ckpt_every=steps,
    )  # fmt: skip
    say(progress, f"fine-tuning on {len(train)} documents ({steps} steps of {batch_size}) -> {target.path}")
    blocks: Any = TextBlocksData(train)
    if augment:  # e.g. mask:0.25 ([MASK] substitution), tokendrop:0.1, or both: mask:0.15,tokendrop:0.1
        from masklab.data.augment import AugmentedData, parse_augment

        transform = parse_augment(augment, "text", mask_id=tokenizer.mask_id, pad_id=tokenizer.pad_id,
                                  special_ids=tokenizer.special_ids)  # fmt: skip
        blocks = AugmentedData(blocks, transform)
    with target.lock():
        check_restart(target, run)
        tokenizer.save(target.path)
        target.write_sidecar(TEXT_INFO, {**info, "data": recorded_spec(spec)})
        fit_run(target, model, blocks, train_cfg, model_config=saved_config(model), quiet=progress is silent,
                resumable=False)  # finetune has no --resume  # fmt: skip
        model.eval()
        preds = []
        with torch.no_grad():
            for part in batches(len(test), 64, progress, f"testing on {len(test)} {tested}"):
                ids, padding = test.ids[part].to(dev), test.padding[part].to(dev)
                preds.append(model.classify(ids, padding).argmax(-1).cpu())
        record = write_finetune_outputs(
            target, model, y_true=test.labels, y_pred=torch.cat(preds), names=corpus.label_names, title=spec,
            extra={"data": spec, "train_size": len(train), "steps": steps, "augment": augment, "tested_on": tested},
        )  # fmt: skip
    if progress is not silent:
        print(f"masklab: {spec}: tested on {len(test)} {tested}")
    return record


# ------------------------------------------------------------------------------------------- fill-mask
def load_fill_model(run: str | Path, device: str = "cpu"):
    """(model, tokenizer) from a masklab ``mlm`` run or a Hugging Face ``BertForMaskedLM`` /
    ``RobertaForMaskedLM`` folder."""

    run = Path(run)
    config_path = run / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{run} has no config.json (expected an mlm run or an HF BERT folder)")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.get("kind") == "mlm":
        model, tokenizer, _ = load_mlm_run(run, device)
        return model, tokenizer
    if "kind" in config and "model_type" not in config:  # a masklab run of another kind, not an HF folder
        raise ValueError(f"{run} is a {config['kind']!r} run; fill needs an mlm run (masklab pretrain mlm) or a "
                         "Hugging Face BERT / RoBERTa folder")  # fmt: skip
    from masklab.interop.hf.masked_lm import load_hf_masked_lm

    model, tokenizer, _ = load_hf_masked_lm(run)
    return model.to(device).eval(), tokenizer


def fill_mask(model, tokenizer, text: str, top_k: int = 5) -> list[dict]:
    """One entry per [MASK] in ``text``: ``{"position", "candidates": [(token, probability), ...]}``."""
    if top_k < 1:
        raise ValueError(f"--top-k must be >= 1, got {top_k}")
    # Let users write [MASK] whatever the tokenizer's spelling (<mask> for BPE).
    text = text.replace("[MASK]", tokenizer.mask_token)
    # Framed as training and embed frame rows ([CLS] text [SEP], frame_rows), not by the tokenizer's own
    # post-processor: a --tokenizer file without one would give an unframed row.
    body = tokenizer.encode(text, add_special_tokens=False).ids
    row = [tokenizer.cls_id, *body, tokenizer.sep_id]
    ids = torch.tensor([row], device=next(model.parameters()).device)  # (1, L)
    if ids.shape[1] > model.config.bert.max_tokens:
        raise ValueError(f"the text is {ids.shape[1]} tokens; the model reads at most {model.config.bert.max_tokens}")
    masked = ids == tokenizer.mask_id  # (1, L) the positions to predict: exactly the [MASK] tokens
    if not bool(masked.any()):
        raise ValueError(f"the text has no {tokenizer.mask_token} token to fill")
    with torch.no_grad():
        probs = model.predict_masked(model(ids), masked).softmax(-1)  # (M, V)
    top = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
    positions = masked[0].nonzero().flatten().tolist()
    return [
        {"position": pos, "candidates": [(tokenizer.id_to_token(i), float(p)) for i, p in zip(idx, val, strict=True)]}
        for pos, idx, val in zip(positions, top.indices.tolist(), top.values.tolist(), strict=True)
    ]


def fill(run: str | Path, text: str, *, top_k: int = 5, device: str = "cpu") -> list[dict]:
    """Predict the ``[MASK]`` tokens of ``text`` with an mlm run or an HF BERT folder (deterministic)."""
    model, tokenizer = load_fill_model(run, str(resolve_device(device)))
    return fill_mask(model, tokenizer, text, top_k)
