"""Fixed blocks of patterns, worked on by a thread pool.

numpy's ufuncs, scipy.fft, the Poisson sampler and file writes release the GIL, so threads
over blocks use every core without copying arrays between processes.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import TypeVar

# About 1 MiB of float64 per block: temporaries stay in cache and below the size at which
# malloc maps (and the kernel zeroes) fresh pages for every allocation.
BLOCK_BYTES = 1 << 20

ProgressCallback = Callable[[str, int, int], None]
_T = TypeVar("_T")


def block_patterns(patch_size: int) -> int:
    """Patterns per block at N = patch_size: 8 at N = 128, 32 at N = 64."""
    return max(1, BLOCK_BYTES // (8 * patch_size * patch_size))


def chunk_slices(n: int, patterns: int) -> list[slice]:
    """Consecutive blocks of `patterns` patterns covering range(n)."""
    return [slice(start, min(start + patterns, n)) for start in range(0, n, patterns)]


def default_workers() -> int:
    """The CPU cores this process may run on."""
    return max(1, len(os.sched_getaffinity(0)))


def run_blocks(
    pool: Executor,
    fn: Callable[[slice], None],
    blocks: list[slice],
    stage: str,
    progress: ProgressCallback | None,
) -> None:
    """Run fn on every block in the pool, reporting (stage, done, total) as blocks finish."""
    for done, _ in enumerate(pool.map(fn, blocks), start=1):
        if progress is not None:
            progress(stage, done, len(blocks))


def ordered(
    pool: Executor, fn: Callable[[slice], _T], blocks: Iterable[slice], ahead: int
) -> Iterator[_T]:
    """Results of fn over blocks in order, keeping at most `ahead` blocks in flight."""
    pending: deque[Future[_T]] = deque()
    for block in blocks:
        pending.append(pool.submit(fn, block))
        if len(pending) > ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
