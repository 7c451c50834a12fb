"""BLAS threads chosen by the work: a small matmul runs on one thread, a big one on every core.

OpenBLAS splits a matmul among its threads and waits for the slowest. On an idle machine a second thread
nearly halves a big matmul. When other programs hold the cores, a woken thread waits for a core for a
scheduler time slice (measured here: 10-200 ms for one matmul), while a small matmul alone takes 0.01-2 ms:
two threads made lesson 06 --quick 6-12x slower than one. So importing tinyprompt puts NumPy's BLAS on one
thread (attention's per-head products, the lessons' own `@`, yours), and `matmul` uses every core for a
product of ALL_CORES_FROM multiply-adds or more, about 3 ms of work for one core, then hands back one.
That keeps tiny-pretrained's linears (at most 67M multiply-adds in the lessons) and every one-token product
of generation on one thread, and puts GPT-2 124M's linears on 8 rows x 64 tokens (302M and up) on all.
`benchmarks/busy.py` measures the lessons and the demo with the cores held; `--shapes` times single matmuls.

"All" is what the BLAS had when tinyprompt was imported: OPENBLAS_NUM_THREADS (or OMP_NUM_THREADS) still caps
it. `set_threads(MAX_THREADS)` gives your own NumPy code every thread again (until tinyprompt's next big
matmul). Without a BLAS that threadpoolctl can steer, `matmul` is just `a @ b`.
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
