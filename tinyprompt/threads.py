"""BLAS threads chosen by the work: a small matmul runs on one thread, a big one on every core.

OpenBLAS splits a matmul among its threads and waits for the slowest. On an idle machine a second thread
nearly halves a big matmul. When other programs hold the cores, a woken thread waits for a core for a
scheduler time slice (measured here: 10-200 ms for one matmul), while a small matmul alone takes 0.01-2 ms:
two threads made lesson 06 --quick 10-30x slower than one. So `matmul` uses every core only from
ALL_CORES_FROM multiply-adds, about 3 ms of work for one core, where waiting costs less and idle cores pay.
That puts tiny-pretrained's linears (at most 67M multiply-adds in the lessons) and every one-token product of
generation on one thread, and GPT-2 124M's linears on a batch of 8 rows x 64 tokens (302M and up) on all.
`benchmarks/busy.py` measures the lessons and the demo with the cores held; `--shapes` times single matmuls.

The most threads is what the BLAS had when tinyprompt was first imported: OPENBLAS_NUM_THREADS (or
OMP_NUM_THREADS) still caps it. Attention's per-head products stay plain `@`: they are below OpenBLAS's own
threshold for a second thread. Without a BLAS that threadpoolctl can steer, `matmul` is just `a @ b`.
"""

import numpy  # noqa: F401  (loads NumPy's BLAS, for threadpoolctl to find)
from threadpoolctl import ThreadpoolController

ALL_CORES_FROM = 1 << 27  # multiply-adds (134M); below it one thread, from it all of them

_blas = ThreadpoolController().select(user_api="blas").lib_controllers  # NumPy's BLAS (found once numpy loaded)
MAX_THREADS = max([c.num_threads for c in _blas] or [1])


def set_threads(n):
    """Tell the BLAS to use n threads (a ctypes call through threadpoolctl, ~10 us)."""
    for controller in _blas:
        controller.set_num_threads(n)


def threads_for(m, k, n):
    """The BLAS threads for [m, k] @ [k, n]: 1 below ALL_CORES_FROM multiply-adds, MAX_THREADS from it."""
    return MAX_THREADS if m * k * n >= ALL_CORES_FROM else 1


def matmul(a, b):
    """a [M, K] @ b [K, N] -> [M, N]: on all the threads for a big product (threads_for), then back to one."""
    if threads_for(a.shape[0], a.shape[1], b.shape[1]) == 1:
        return a @ b
    set_threads(MAX_THREADS)
    try:
        return a @ b
    finally:
        set_threads(1)


set_threads(1)  # every other `@` (attention's, the lessons', yours) runs on one thread: small ones spin less
