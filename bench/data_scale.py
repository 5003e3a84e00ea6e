"""Data bigger than memory: peak RSS and time to the first step at two corpus sizes 4x apart, prepare throughput.

Builds synthetic text on disk (Zipf-distributed pseudo-words, one document per line), tokenises it once with
``masklab prepare`` and trains ``pretrain mlm`` (bert-tiny) and ``pretrain clm`` (gpt-tiny) from the shards in
child processes. Peak RSS is the child's ``ru_maxrss`` (``os.wait4``); time to first step is from process start
to the first line of ``metrics.jsonl`` (``--log-every 1``). Prepare throughput is input MB/s of the encode pass
(tokenizer given) with 1 and 2 workers. ``--big-mb 2000`` adds the 2 GB prepare + 100 steps of ``pretrain mlm``.
Timings on a shared machine are "under load"; RSS is not affected by load.

    python bench/data_scale.py --text-mb 100 400                       # the acceptance sizes
    python bench/data_scale.py --text-mb 5 20 --steps 2               # quick check
    python bench/data_scale.py --text-mb 100 --big-mb 2000 --big-steps 100
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return "unknown"


def write_corpus(path: Path, mb: float, seed: int = 0) -> Path:
    """About ``mb`` MB of text: 8 distinct 4 MB blocks of Zipf-distributed pseudo-words, cycled."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = ["".join(rng.choice(letters, size=rng.integers(2, 10))) for _ in range(20_000)]
    blocks = []
    for _ in range(8):
        ids = np.minimum(rng.zipf(1.2, size=700_000), len(vocab)) - 1
        words = [vocab[i] for i in ids]
        lines = [" ".join(words[i : i + 60]) for i in range(0, len(words), 60)]
        blocks.append(("\n".join(lines) + "\n").encode())
    target, written = int(mb * 1e6), 0
    with open(path, "wb") as f:
        while written < target:
            block = blocks[(written // len(blocks[0])) % len(blocks)][: target - written]
            f.write(block)
            written += len(block)
    return path


def write_images(folder: Path, count: int) -> Path:
    """``count`` random 96x96 RGB PNGs (smooth noise, so they compress like photos more than like noise)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        low = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
        Image.fromarray(low).resize((96, 96), Image.Resampling.BILINEAR).save(folder / f"{i:06d}.png")
    return folder


def run_child(cmd: list[str], metrics: Path | None = None) -> dict:
    """Run ``cmd``; returns wall seconds, its output and seconds until ``metrics`` got its first line."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first = None
    while proc.poll() is None:
        if first is None and metrics is not None and metrics.is_file() and metrics.stat().st_size > 0:
            first = time.perf_counter() - start
        time.sleep(0.05)
    output = proc.stdout.read() if proc.stdout else ""
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{output[-3000:]}")
    return {"wall_s": time.perf_counter() - start, "first_step_s": first, "output": output}


def peak_rss_mb(cmd: list[str], metrics: Path | None = None) -> dict:
    # The peak RSS of the masklab process (and of its workers: ru_maxrss of RUSAGE_CHILDREN is the largest
    # descendant), reported by a tiny wrapper process.
    report = "u=resource.getrusage(resource.RUSAGE_CHILDREN);print('PEAK_RSS_KB', u.ru_maxrss, u.ru_utime + u.ru_stime)"
    code = f"import resource,subprocess,sys;r=subprocess.call(sys.argv[1:]);{report};sys.exit(r)"
    wrapper = [sys.executable, "-c", code, *cmd]
    result = run_child(wrapper, metrics)
    kb = [int(line.split()[1]) for line in result["output"].splitlines() if line.startswith("PEAK_RSS_KB")]
    result["peak_rss_mb"] = kb[-1] / 1024 if kb else float("nan")
    cpu = [float(line.split()[2]) for line in result["output"].splitlines() if line.startswith("PEAK_RSS_KB")]
    result["cpu_s"] = cpu[-1] if cpu else float("nan")  # CPU seconds of the process and its workers
    return result


def masklab(*args: str) -> list[str]:
    return [sys.executable, "-m", "masklab", *args]


def prepare(corpus: Path, out: Path, workers: int, tokenizer: Path | None = None) -> dict:
    extra = ["--tokenizer", str(tokenizer)] if tokenizer else ["--sample-mb", "10"]
    cmd = masklab("prepare", "--data", str(corpus), "--out", str(out), "--workers", str(workers), *extra)
    return peak_rss_mb(cmd)


def pretrain(kind: str, prepared: Path, out: Path, steps: int) -> dict:
    preset = {"mlm": ["--preset", "bert-tiny", "--seq-len", "128"], "clm": ["--preset", "gpt-tiny"]}[kind]
    cmd = masklab("pretrain", kind, "--data", str(prepared), "--out", str(out), "--steps", str(steps),
                  "--log-every", "1", "--device", "cpu", *preset)  # fmt: skip
    if kind == "clm":
        cmd += ["--eval-batches", "20"]
    if kind == "mlm":
        cmd += ["--holdout", "0.001"]
    return peak_rss_mb(cmd, out / "metrics.jsonl")


class Rows(list):
    """Result rows, each printed as a markdown table line when it arrives (a long run is useful when stopped)."""

    def append(self, r: dict) -> None:
        if not self:
            print(f"| {'what':<60} | peak RSS MB | first step s | total s | MB/s | MB/CPU-s |")
            print(f"|{'-' * 62}|-------------|--------------|---------|------|----------|")
        first = f"{r['first_step_s']:.1f}" if r.get("first_step_s") else "-"
        rate = f"{r['mb_per_s']:.2f}" if r.get("mb_per_s") else "-"
        cpu_rate = f"{r['mb_per_cpu_s']:.2f}" if r.get("mb_per_cpu_s") else "-"
        print(f"| {r['what']:<60} | {r['peak_rss_mb']:11.0f} | {first:>12} | {r['seconds']:7.1f} | {rate:>4} "
              f"| {cpu_rate:>8} |",
              flush=True)  # fmt: skip
        super().append(r)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text-mb", type=float, nargs="*", default=[100, 400])
    parser.add_argument("--images", type=int, nargs="*", default=[8000, 32000], help="image folder sizes (files)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the streamed MAE runs")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--throughput-mb", type=float, default=20, help="corpus size of the 1 vs 2 worker runs")
    parser.add_argument("--big-mb", type=float, default=None, help="also prepare + train on a corpus this large")
    parser.add_argument("--big-steps", type=int, default=100)
    parser.add_argument("--work", default="/tmp/masklab-data-scale", help="scratch folder (deleted at the end)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--keep-prepared", action="store_true", help="keep it for a following invocation")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    print(f"CPU: {cpu_model()}; {os.cpu_count()} cores; free disk under {work}: "
          f"{shutil.disk_usage(work).free / 1e9:.0f} GB; timings measured under load")  # fmt: skip
    rows = Rows()
    try:
        tokenizer = None
        for mb in args.text_mb:
            path = work / f"text-{mb:g}mb.txt"
            corpus = path if path.is_file() and path.stat().st_size == int(mb * 1e6) else write_corpus(path, mb)
            prepared = work / f"prepared-{mb:g}mb"  # an interrupted bench's prepare is continued, not redone
            first = prepare(corpus, prepared, 2, tokenizer)
            tokenizer = tokenizer or prepared / "tokenizer.json"
            rows.append({"what": f"prepare {mb:g} MB (2 workers)", "peak_rss_mb": first["peak_rss_mb"],
                         "seconds": first["wall_s"]})  # fmt: skip
            if mb == args.text_mb[0] and args.throughput_mb:
                small = write_corpus(work / "throughput.txt", args.throughput_mb, seed=1)
                for workers in (1, 2):
                    target = work / f"throughput-{workers}"
                    shutil.rmtree(target, ignore_errors=True)
                    res = prepare(small, target, workers, tokenizer)
                    rows.append({"what": f"prepare {args.throughput_mb:g} MB, {workers} worker(s), tokenizer given",
                                 "peak_rss_mb": res["peak_rss_mb"], "seconds": res["wall_s"],
                                 "mb_per_s": args.throughput_mb / res["wall_s"],
                                 "mb_per_cpu_s": args.throughput_mb / res["cpu_s"]})  # fmt: skip
                    shutil.rmtree(target)
                small.unlink()
            for kind in ("mlm", "clm"):
                out = work / f"run-{kind}-{mb:g}"
                shutil.rmtree(out, ignore_errors=True)
                res = pretrain(kind, prepared, out, args.steps)
                rows.append({"what": f"pretrain {kind} on {mb:g} MB ({args.steps} steps)",
                             "peak_rss_mb": res["peak_rss_mb"], "first_step_s": res["first_step_s"],
                             "seconds": res["wall_s"]})  # fmt: skip
                shutil.rmtree(out)
            corpus.unlink()
        for count in args.images:
            folder = write_images(work / f"images-{count}", count)
            out = work / f"run-mae-{count}"
            cmd = masklab("pretrain", "mae", "--data", str(folder), "--preset", "mae-tiny", "--image-size", "32",
                          "--steps", str(args.steps), "--log-every", "1", "--device", "cpu", "--out", str(out),
                          "--workers", str(args.workers))  # fmt: skip
            res = peak_rss_mb(cmd, out / "metrics.jsonl")
            rows.append({"what": f"pretrain mae on {count} PNG 96x96 ({args.steps} steps, {args.workers} workers)",
                         "peak_rss_mb": res["peak_rss_mb"], "first_step_s": res["first_step_s"],
                         "seconds": res["wall_s"]})  # fmt: skip
            shutil.rmtree(out)
            shutil.rmtree(folder)
        if args.big_mb:
            corpus = write_corpus(work / "big.txt", args.big_mb)
            prepared = work / "prepared-big"
            res = prepare(corpus, prepared, 2, tokenizer)
            rows.append({"what": f"prepare {args.big_mb:g} MB (2 workers)", "peak_rss_mb": res["peak_rss_mb"],
                         "seconds": res["wall_s"], "mb_per_s": args.big_mb / res["wall_s"],
                         "mb_per_cpu_s": args.big_mb / res["cpu_s"]})  # fmt: skip
            corpus.unlink()
            res = pretrain("mlm", prepared, work / "run-big", args.big_steps)
            rows.append({"what": f"pretrain mlm on {args.big_mb:g} MB ({args.big_steps} steps)",
                         "peak_rss_mb": res["peak_rss_mb"], "first_step_s": res["first_step_s"],
                         "seconds": res["wall_s"]})  # fmt: skip
    finally:
        if not args.keep and not args.keep_prepared:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
