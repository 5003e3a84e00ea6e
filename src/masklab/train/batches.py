"""Where ``fit``'s micro-batches come from: the epoch sampler, the per-micro-batch seeds, and the source that
builds each batch, in this process (``workers=0``) or in ``torch.utils.data.DataLoader`` worker processes.

Every micro-batch is a task ``(indices, seed)``: the indices come from the epoch permutation, the seed from
``(seed, step, global micro-batch index)``. Whoever builds the batch seeds a fresh generator with that seed and
calls ``data.get_batch(indices, generator)``; the loop then continues with the generator *state the build left*
(returned by the worker), so the model's masking noise is drawn exactly as in the in-process path. Hence the
result is independent of the number of workers, and of ranks: rank ``r`` builds only micro-batches
``r * grad_accum ...`` of each global batch (disjoint indices), as :mod:`masklab.train.distributed` describes.
"""

from __future__ import annotations

import hashlib
import pickle
import signal
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch


def derived_seed(seed: int, purpose: str) -> int:
    # Sampler seeds are seed * 1_000_003 + epoch; hashing keeps the other streams from ever coinciding with
    # one of them (seed 0 would otherwise make masking noise and epoch 0's permutation the same stream).
    return int.from_bytes(hashlib.sha256(f"masklab:{purpose}:{seed}".encode()).digest()[:8], "little") >> 1


# Above this many examples an epoch's order is not materialised (a randperm of 500M causal-LM windows would
# take 4 GB): position i of the epoch maps to (a * i + b) mod n, a bijection when gcd(a, n) = 1.
MAX_MATERIALISED = 1 << 24


def affine_positions(start: int, stop: int, a: int, b: int, n: int, *, chunk_bits: int | None = None) -> torch.Tensor:
    """``(i * a + b) mod n`` for ``i`` in ``[start, stop)``, exact for any ``0 <= a, b, i < n < 2**61``.

    When ``(stop - 1) * a + b`` fits in int64 this is the one-line product earlier runs used (same tensor, so
    resumed runs continue identically). Above that (n beyond ~3e9) ``i * a`` would wrap around int64 and the
    map stop being a bijection, so ``a`` is split into ``chunk_bits``-bit digits and the product reduced
    mod ``n`` digit by digit (Horner): every intermediate stays below ``2**63``. ``chunk_bits`` forces that
    path (tests)."""
    if not 0 <= start <= stop <= n or not (0 <= a < n and 0 <= b < n):
        raise ValueError(
            f"affine_positions: expected 0 <= start <= stop <= n and 0 <= a, b < n, got {start, stop, a, b, n}"
        )
    i = torch.arange(start, stop, dtype=torch.long)
    if chunk_bits is None:
        if stop == start or (stop - 1) * a + b < 2**63:
            return (i * a + b) % n
        if n.bit_length() > 61:
            raise ValueError(f"a dataset of {n} examples is too large to shuffle (at most 2**61 - 1)")
        chunk_bits = 62 - n.bit_length()  # r < n, so r << chunk_bits and i * digit both stay < 2**62
    mask = (1 << chunk_bits) - 1
    digits = []
    while a:
        digits.append(a & mask)
        a >>= chunk_bits
    r = torch.zeros_like(i)
    for digit in reversed(digits):
        r = ((r << chunk_bits) % n + i * digit) % n
    return (r + b) % n


class EpochSampler:
    """Deterministic epoch permutations consumed in order with a cursor.

    An epoch's last incomplete batch rolls over into the next epoch, so every example is visited exactly
    once per epoch and every batch has the requested size. State is just ``(epoch, cursor)``. Datasets of
    more than ``MAX_MATERIALISED`` examples get a seeded affine permutation instead of ``randperm`` (constant
    memory; a weaker shuffle, still a full visit of every example per epoch).
    """

    def __init__(self, num_examples: int, seed: int) -> None:
        if num_examples < 1:
            raise ValueError(f"the dataset is empty (len(data) == {num_examples})")
        self.num_examples, self.seed = num_examples, seed
        self.epoch, self.cursor = 0, 0
        self._cached: tuple[int, torch.Tensor] | None = None

    def permutation(self, epoch: int) -> torch.Tensor:
        if self._cached is None or self._cached[0] != epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._cached = (epoch, torch.randperm(self.num_examples, generator=g))
        return self._cached[1]

    def _affine(self, epoch: int) -> tuple[int, int]:
        import math

        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        n = self.num_examples
        while True:
            a = int(torch.randint(1, n, (1,), generator=g))
            if math.gcd(a, n) == 1:
                return a, int(torch.randint(0, n, (1,), generator=g))

    def _slice(self, epoch: int, start: int, stop: int) -> torch.Tensor:
        if self.num_examples <= MAX_MATERIALISED:
            return self.permutation(epoch)[start:stop]
        a, b = self._affine(epoch)
        return affine_positions(start, stop, a, b, self.num_examples)

    def next_indices(self, count: int) -> torch.Tensor:
        parts = []
        while count > 0:
            take = min(count, self.num_examples - self.cursor)
            parts.append(self._slice(self.epoch, self.cursor, self.cursor + take))
            self.cursor += take
            count -= take
            if self.cursor == self.num_examples:
                self.epoch, self.cursor = self.epoch + 1, 0
        return torch.cat(parts)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "cursor": self.cursor}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        epoch, cursor = int(state["epoch"]), int(state["cursor"])
        if epoch < 0 or not 0 <= cursor < self.num_examples:
            raise ValueError(f"sampler state {dict(state)} does not fit a dataset of {self.num_examples} examples")
        self.epoch, self.cursor = epoch, cursor


def micro_seed(seed: int, step: int, m: int) -> int:
    """The loop generator's seed for global micro-batch ``m`` of optimizer step ``step`` (0-based)."""
    return derived_seed(seed, f"micro:{step}:{m}")


class _BuildTask(torch.utils.data.Dataset):
    """DataLoader "dataset" whose keys are tasks: ``(indices, seed)`` -> ``(batch, generator state)``."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, task: tuple[torch.Tensor, int]) -> tuple[Any, torch.Tensor | None]:
        indices, seed = task
        generator = torch.Generator().manual_seed(seed)
        try:
            return self.data.get_batch(indices, generator), generator.get_state()
        except (ValueError, OSError) as err:  # an ordinary data error: handed back as a value, not a traceback
            return _Failure(err), None


class _Failure:
    """A worker's ``ValueError`` / ``OSError``, picklable: DataLoader would re-raise it as a new exception whose
    message is "Caught ValueError in DataLoader worker process 1. Original Traceback ..." (50 lines)."""

    def __init__(self, err: ValueError | OSError) -> None:
        self.message, self.errno = str(err), getattr(err, "errno", None)
        self.strerror, self.filename = getattr(err, "strerror", None), getattr(err, "filename", None)
        self.type: type[Exception] = type(err)
        try:  # a user's exception class need not be importable in the main process
            pickle.loads(pickle.dumps(err))
        except Exception:
            self.type = OSError if isinstance(err, OSError) else ValueError

    def error(self) -> Exception:
        if self.errno is not None and self.strerror:
            return _rebuilt(self.type, OSError, self.errno, self.strerror, self.filename)
        return _rebuilt(self.type, OSError if issubclass(self.type, OSError) else ValueError, self.message)


def _rebuilt(kind: type[Exception], base: type[Exception], *args: Any) -> Exception:
    try:
        return kind(*args)
    except Exception:  # e.g. UnicodeDecodeError takes five arguments
        return base(*args)


def _with_note(err: Exception, note: str) -> Exception:
    """``err`` (same type) with ``; note`` at the end of its message (``strerror`` for an ``OSError``)."""
    if isinstance(err, OSError) and err.errno is not None and err.strerror:
        return _rebuilt(type(err), OSError, err.errno, f"{err.strerror}; {note}", err.filename)
    return _rebuilt(type(err), OSError if isinstance(err, OSError) else ValueError, f"{err}; {note}")


class _Tasks(torch.utils.data.Sampler):
    """This rank's micro-batch tasks from ``start_step`` on, replaying the loop's sampler on a copy."""

    def __init__(self, num_examples: int, cfg: Any, state: dict[str, int], start_step: int, rank: int, world: int):
        self.num_examples, self.cfg, self.state = num_examples, cfg, state
        self.start_step, self.rank, self.world = start_step, rank, world

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int]]:
        cfg = self.cfg
        sampler = EpochSampler(self.num_examples, cfg.seed)
        sampler.load_state_dict(self.state)
        micro_size = cfg.batch_size // (self.world * cfg.grad_accum)
        for step in range(self.start_step, cfg.steps):
            indices = sampler.next_indices(cfg.batch_size)
            for j in range(cfg.grad_accum):
                m = self.rank * cfg.grad_accum + j
                yield indices[m * micro_size : (m + 1) * micro_size], micro_seed(cfg.seed, step, m)

    def __len__(self) -> int:
        return (self.cfg.steps - self.start_step) * self.cfg.grad_accum


def _ignore_ctrl_c(worker_id: int) -> None:
    """A worker's ``worker_init_fn``: Ctrl-C (SIGINT to the whole process group) is the main process's to handle;
    it finishes the step and shuts the workers down (:meth:`BatchSource.close`). A worker that took it died
    wherever it was, e.g. while passing a batch's file descriptor, and printed a traceback of its own."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class BatchSource:
    """Builds micro-batches for ``fit``; ``workers > 0`` prefetches them in DataLoader worker processes.

    Call :meth:`start` once the sampler holds its (possibly resumed) state, then :meth:`get` for every
    micro-batch in order; :meth:`close` stops the workers.
    """

    def __init__(self, data: Any, workers: int = 0, *, pin_memory: bool = False,
                 note: Callable[[], str] | None = None) -> None:  # fmt: skip
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.data, self.workers, self.pin_memory, self.note = data, workers, pin_memory, note
        self._iter: Iterator | None = None

    def start(self, cfg: Any, sampler: EpochSampler, step: int, rank: int, world: int) -> None:
        if not self.workers or step >= cfg.steps:
            return
        tasks = _Tasks(sampler.num_examples, cfg, sampler.state_dict(), step, rank, world)
        loader = torch.utils.data.DataLoader(
            _BuildTask(self.data),
            batch_size=None,  # a task already is a whole micro-batch
            sampler=tasks,
            num_workers=self.workers,
            prefetch_factor=2,
            pin_memory=self.pin_memory,
            worker_init_fn=_ignore_ctrl_c,
            # DataLoader draws its worker base seed from this, not from torch's global RNG (dropout's stream).
            generator=torch.Generator().manual_seed(0),
        )
        self._iter = iter(loader)

    def get(self, indices: torch.Tensor, seed: int, generator: torch.Generator) -> Any:
        """The batch for ``indices``; leaves ``generator`` where ``get_batch`` left it after ``manual_seed(seed)``.

        A ``ValueError`` / ``OSError`` of ``get_batch`` is raised as the same one line whether it happened here or
        in a worker, with ``note()`` (e.g. what the checkpoint holds) appended."""
        try:
            if self._iter is None:
                generator.manual_seed(seed)
                return self.data.get_batch(indices, generator)
            batch, state = next(self._iter)
            if isinstance(batch, _Failure):
                raise batch.error()
        except (ValueError, OSError) as err:
            if self.note is None:
                raise
            raise _with_note(err, self.note()) from None
        generator.set_state(state)
        return batch

    def close(self) -> None:
        self._iter = None  # the iterator's finaliser shuts the workers down


def seed_global_rng(seed: int, device: torch.device) -> None:
    """Seed the global RNG that dropout on ``device`` draws from: torch's CPU generator, plus the current
    CUDA device's on CUDA. The same draws as ``torch.manual_seed(seed)`` for this run, without its cost on
    every step: it also queues a seed for each lazily initialised backend (CUDA, XPU, MTIA), recording a
    Python stack trace each time (~1.5 ms per call, 3% of a small table model's step)."""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.manual_seed(seed)
    elif device.type != "cpu":
        torch.manual_seed(seed)
