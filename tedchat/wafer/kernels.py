"""The wafer numerics' matrix product: panel-packed weights and one row-invariant kernel.

A decode step multiplies a few rows (one per sequence in flight, or the k+1 rows of a
speculative verify) by every weight matrix, and a row's result must not depend on the rows
that came with it (a sequence decoded in a batch of 4 gives the logits it gives alone, bit for
bit). BLAS cannot give that cheaply: NumPy sends one row to a GEMV and several to a GEMM,
which sum in different orders, and on this machine's OpenBLAS a GEMM of 2-16 rows costs
2.5-3x a GEMV and is not even row-invariant itself (a row of a 4-row GEMM differs from the
same row in a 2-row GEMM for a 576x576 matrix). One GEMV per row is invariant but reads the
weights once per row (``benchmarks/wafer_batch.py`` keeps the figures).

So the weights are stored as :class:`Panels`: the ``(in, out)`` matrix cut into
:data:`PANEL`-column panels, each ``(in, PANEL)`` contiguous, and :func:`rows_times` streams
each panel once for all rows. Every output element is summed the same way whatever the row
count, the thread count or the row's place in the call: starting from 0.0, the products of
its inputs added in input order, four per statement, each ``sum + x * w`` one fused
multiply-add (the kernel's only fast-math flag is ``contract``: nothing is reassociated, and
every row's sums are the same instructions). Rows never
meet, and a panel is computed by one thread. That is row invariance by construction; the
tests check it with ``np.array_equal`` on the bundled model and on random shapes.

Many rows (prompt chunks) go through :meth:`Panels.matmul`, a BLAS GEMM per panel.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

F32 = np.float32
T = TypeVar("T")

#: Output columns per panel. 64 streams fastest on this 2-core host with one thread and keeps
#: two threads' work balanced for every matrix of the bundled model (benchmarks/wafer_batch.py).
PANEL = 64


class Panels:
    """An ``(in, out)`` float32 matrix stored as ``data[p, i, c]`` = ``w[i, p * PANEL + c]``.

    The last panel is padded with zero columns; :attr:`shape` is the matrix's own.
    """

    __slots__ = ("data", "shape")

    def __init__(self, data: np.ndarray, n_out: int) -> None:
        if data.ndim != 3 or data.shape[2] != PANEL or data.dtype != F32:
            raise ValueError(f"panels must be float32 [panels, in, {PANEL}]")
        if not data.flags.c_contiguous:
            raise ValueError("panels must be C-contiguous")
        if not (data.shape[0] - 1) * PANEL < n_out <= data.shape[0] * PANEL:
            raise ValueError(f"{data.shape[0]} panels cannot hold {n_out} columns")
        self.data = data
        self.shape = (int(data.shape[1]), int(n_out))

    @classmethod
    def empty(cls, n_in: int, n_out: int) -> Panels:
        """Zeroed panels for an ``(n_in, n_out)`` matrix, to be filled with :meth:`set_columns`."""
        return cls(np.zeros((-(-n_out // PANEL), n_in, PANEL), dtype=F32), n_out)

    @classmethod
    def pack(cls, w: np.ndarray) -> Panels:
        """Panels holding a copy of the ``(in, out)`` matrix ``w``."""
        p = cls.empty(*w.shape)
        p.set_columns(0, w)
        return p

    def set_columns(self, start: int, block: np.ndarray) -> None:
        """Write ``block`` (``(in, n)``) into columns ``start .. start + n``."""
        n_in, n = block.shape
        if n_in != self.shape[0] or start < 0 or start + n > self.shape[1]:
            raise ValueError(f"columns {start}..{start + n} do not fit a {self.shape} matrix")
        j = start
        while j < start + n:
            p, c = divmod(j, PANEL)
            take = min(PANEL - c, start + n - j)
            self.data[p, :, c : c + take] = block[:, j - start : j - start + take]
            j += take

    @property
    def nbytes(self) -> int:
        """The matrix's own float32 bytes (what a decoded token reads; no padding)."""
        return 4 * self.shape[0] * self.shape[1]

    def columns(self, ids: np.ndarray) -> np.ndarray:
        """Columns ``ids`` as rows: a C-contiguous ``(len(ids), in)`` array (a gather)."""
        ids = np.asarray(ids, dtype=np.int64)
        return np.ascontiguousarray(self.data[ids // PANEL, :, ids % PANEL])

    def dense(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Columns ``start .. stop`` (default all) as a new ``(in, n)`` array."""
        stop = self.shape[1] if stop is None else stop
        p0, p1 = start // PANEL, -(-stop // PANEL)
        block = self.data[p0:p1].transpose(1, 0, 2).reshape(self.shape[0], -1)
        return np.ascontiguousarray(block[:, start - p0 * PANEL : stop - p0 * PANEL])

    def matmul(self, x: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
        """``x @ w[:, start:stop]`` for many rows (a prompt chunk): a GEMM per panel, BLAS's
        summation order (not row-invariant)."""
        stop = self.shape[1] if stop is None else stop
        p0, p1 = start // PANEL, -(-stop // PANEL)
        x = np.ascontiguousarray(x, dtype=F32)
        out = np.empty((x.shape[0], p1 - p0, PANEL), dtype=F32)
        halves = threads() > 1 and p1 - p0 > 1
        if not halves:
            np.matmul(x, self.data[p0:p1], out=out.transpose(1, 0, 2))
        else:
            # These GEMMs are too small for BLAS's own threads (a 2-thread BLAS took 119 ms
            # for a 40-token chunk of the bundled model against 130 ms on one): two threads
            # each run half the panels on a one-thread BLAS instead.
            mid = (p1 - p0) // 2
            with _one_thread_blas():
                job = _helper().submit(
                    np.matmul, x, self.data[p0 + mid : p1], out=out[:, mid:].transpose(1, 0, 2)
                )
                np.matmul(x, self.data[p0 : p0 + mid], out=out[:, :mid].transpose(1, 0, 2))
                job.result()
        return out.reshape(x.shape[0], -1)[:, start - p0 * PANEL : stop - p0 * PANEL]


# --------------------------------------------------------------------------- the kernel


def _rows_times_py(x: Any, p: Any, y: Any, nt: int) -> None:  # pragma: no cover - compiled
    """``y[:, panel b] = x @ p[b]`` for every panel, the panels split into ``nt`` runs.

    Every output element: ``acc = 0.0``, then ``acc = acc + x[k] * w[k] + x[k+1] * w[k+1] +
    x[k+2] * w[k+2] + x[k+3] * w[k+3]`` for k = 0, 4, 8, ... (left to right, each step a
    fused multiply-add; nothing reassociated), then ``acc = acc + x[k] * w[k]`` for each input past
    the last multiple of 4. Rows go two at a time (one weight load feeds both rows' sums, each
    row's sum written exactly as alone) and a last odd row alone; a row's 64 sums stay in
    registers over its panel, and the panel (``in x 256`` bytes) comes from memory once and
    from cache for the next rows.
    """
    n, kk = x.shape
    npn = p.shape[0]
    k4 = kk - kk % 4
    for t in prange(nt):
        acc = np.empty(64, np.float32)
        acd = np.empty(64, np.float32)
        for b in range(t * npn // nt, (t + 1) * npn // nt):
            j0 = b * 64
            r = 0
            while r + 1 < n:
                for j in range(64):
                    acc[j] = 0.0
                    acd[j] = 0.0
                for k in range(0, k4, 4):
                    x0 = x[r, k]
                    x1 = x[r, k + 1]
                    x2 = x[r, k + 2]
                    x3 = x[r, k + 3]
                    z0 = x[r + 1, k]
                    z1 = x[r + 1, k + 1]
                    z2 = x[r + 1, k + 2]
                    z3 = x[r + 1, k + 3]
                    for j in range(64):
                        w0 = p[b, k, j]
                        w1 = p[b, k + 1, j]
                        w2 = p[b, k + 2, j]
                        w3 = p[b, k + 3, j]
                        acc[j] = acc[j] + x0 * w0 + x1 * w1 + x2 * w2 + x3 * w3
                        acd[j] = acd[j] + z0 * w0 + z1 * w1 + z2 * w2 + z3 * w3
                for k in range(k4, kk):
                    xk = x[r, k]
                    zk = x[r + 1, k]
                    for j in range(64):
                        acc[j] = acc[j] + xk * p[b, k, j]
                        acd[j] = acd[j] + zk * p[b, k, j]
                for j in range(64):
                    y[r, j0 + j] = acc[j]
                    y[r + 1, j0 + j] = acd[j]
                r += 2
            if r < n:
                for j in range(64):
                    acc[j] = 0.0
                for k in range(0, k4, 4):
                    x0 = x[r, k]
                    x1 = x[r, k + 1]
                    x2 = x[r, k + 2]
                    x3 = x[r, k + 3]
                    for j in range(64):
                        w0 = p[b, k, j]
                        w1 = p[b, k + 1, j]
                        w2 = p[b, k + 2, j]
                        w3 = p[b, k + 3, j]
                        acc[j] = acc[j] + x0 * w0 + x1 * w1 + x2 * w2 + x3 * w3
                for k in range(k4, kk):
                    xk = x[r, k]
                    for j in range(64):
                        acc[j] = acc[j] + xk * p[b, k, j]
                for j in range(64):
                    y[r, j0 + j] = acc[j]


assert PANEL == 64, "the kernel is written for 64-column panels"

#: ``numba.prange`` once the kernel is compiled (the kernel's runs of panels in parallel).
prange: Any = range

_state: dict[str, Any] = {}
_state_lock = threading.Lock()
_local = threading.local()


def _kernel() -> tuple[Callable[..., None], bool]:
    """The compiled kernel and whether it can use threads (compiled on first use: importing
    numba costs ~0.25 s, which commands that never multiply should not pay)."""
    got = _state.get("kernel")
    if got is not None:
        return got, _state["parallel"]
    with _state_lock:
        if "kernel" not in _state:
            try:
                fn = compile_kernel(parallel=True)
                _state["parallel"] = True
            except Exception:  # no thread-safe threading layer on this machine
                fn = compile_kernel(parallel=False)
                _state["parallel"] = False
            _state["kernel"] = fn
    return _state["kernel"], _state["parallel"]


def compile_kernel(parallel: bool) -> Callable[..., None]:
    """Compile (or load from numba's cache) the kernel, with threads or without: the same
    source and flags, so the same sums (a test holds the two to ``np.array_equal``)."""
    import numba

    globals()["prange"] = numba.prange
    _wide_vectors(numba)
    # Engines decode in threads of their own: only a thread-safe threading layer (OpenMP or
    # TBB) may run parallel regions started from several threads; without one, one thread.
    numba.config.THREADING_LAYER = "threadsafe"  # type: ignore[attr-defined]
    flags: dict[str, Any] = {"boundscheck": False, "nogil": True, "fastmath": {"contract"}}
    fn: Callable[..., None] = numba.njit(parallel=parallel, cache=parallel, **flags)(_rows_times_py)
    _probe(fn)
    return fn


def _wide_vectors(numba: Any) -> None:
    """Let LLVM use the CPU's widest vectors. For AVX-512 CPUs LLVM prefers 256-bit ones
    (a tuning flag, ``prefer-256-bit``); lifting it made a decode step's products of 2 and 4
    rows 7-9% faster here (benchmarks/wafer_batch.py). The sums do not change: each is the
    same fused multiply-adds in the same order, only more of them per instruction. Set
    ``NUMBA_CPU_FEATURES`` to choose the features yourself."""
    if numba.config.CPU_FEATURES:
        return
    try:
        import llvmlite.binding as llvm

        features = llvm.get_host_cpu_features().flatten()
    except Exception:  # no host feature query here: keep numba's defaults
        return
    if "+avx512f" in features.split(","):
        numba.config.CPU_FEATURES = features + ",-prefer-256-bit"


def _probe(fn: Callable[..., None]) -> None:
    x = np.ones((1, 9), dtype=F32)
    p = np.ones((2, 9, PANEL), dtype=F32)
    y = np.empty((1, 2 * PANEL), dtype=F32)
    fn(x, p, y, 2)
    if not np.all(y == F32(9.0)):
        raise RuntimeError("the product kernel computed a wrong result")


def set_threads(n: int) -> None:
    """Threads the kernel may use for calls made from the calling thread (at least 1)."""
    _local.n = max(1, int(n))


def threads() -> int:
    """Threads the kernel uses for calls from this thread (1 unless :func:`set_threads`)."""
    return int(getattr(_local, "n", 1))


@contextlib.contextmanager
def compute_threads(n: int) -> Iterator[None]:
    """Use ``n`` threads in the block: NumPy's BLAS (process-wide, needs ``threadpoolctl``)
    and the product kernel (for calls from this thread)."""
    before = threads()
    set_threads(n)
    try:
        with blas_threads(n):
            yield
    finally:
        set_threads(before)


def rows_times(x: np.ndarray, w: Panels) -> np.ndarray:
    """``x @ w`` for ``x`` ``[T, in]`` float32, every row summed the same fixed way."""
    fn, parallel = _kernel()
    n_in, n_out = w.shape
    if x.ndim != 2 or x.shape[1] != n_in:
        raise ValueError(f"cannot multiply {x.shape} by a {w.shape} matrix")
    x = np.ascontiguousarray(x, dtype=F32)
    npn = w.data.shape[0]
    y = np.empty((x.shape[0], npn * PANEL), dtype=F32)
    nt = min(threads(), npn) if parallel else 1
    if parallel and getattr(_local, "numba_n", None) != nt:
        # Changing numba's count re-forms its thread team: done only when it changes.
        import numba

        numba.set_num_threads(min(nt, int(numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]
        _local.numba_n = nt
    fn(x, w.data, y, nt)
    return y[:, :n_out] if n_out != y.shape[1] else y


# --------------------------------------------------------------------------- where it runs

_helpers: list[ThreadPoolExecutor] = []


def _helper() -> ThreadPoolExecutor:
    """A second thread for :meth:`Panels.matmul`'s other half (made once, on first use)."""
    with _state_lock:
        if not _helpers:
            _helpers.append(ThreadPoolExecutor(1, thread_name_prefix="tedchat-numerics-2"))
    return _helpers[0]


@contextlib.contextmanager
def _one_thread_blas() -> Iterator[None]:
    with blas_threads(1):
        yield


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """Limit NumPy's BLAS to ``n`` threads inside the block (needs ``threadpoolctl``).

    BLAS thread pools are process-wide, so this limits every thread's NumPy while active.
    Without threadpoolctl it does nothing: set the count another way (e.g. the environment).
    """
    controller = _blas_controller()
    if controller is None:
        yield
        return
    with controller.limit(limits=n, user_api="blas"):
        yield


_controllers: list[Any] = []


def _blas_controller() -> Any:
    """One threadpoolctl controller for the process (None without threadpoolctl): finding the
    loaded libraries costs ~0.1 ms, which a decode step of 25 ms should not pay each time."""
    if not _controllers:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            return None
        _controllers.append(ThreadpoolController())
    return _controllers[0]


class _NumericsThread:
    """The one thread of this process that runs the kernel's parallel regions.

    GNU OpenMP gives every thread that starts parallel regions a team of its own, and while
    another such thread lives, a region costs far more: on this 2-core host a decode step's
    products took 31.5 ms at 2 threads beside a second (idle) launcher against 20.1 ms
    without one. Engines decode in threads of their own, and load in asyncio's worker
    threads, so each decode step (and each load's timed steps) is handed to this thread:
    one hand-over per step, not per product.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def call(self, fn: Callable[[], T]) -> T:
        if threading.current_thread() is self._thread:
            return fn()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="tedchat-numerics", daemon=True
                )
                self._thread.start()
        done = threading.Event()
        box: list[Any] = []
        self._jobs.put((fn, box, done))
        done.wait()
        ok, value = box[0]
        if not ok:
            raise value
        return value

    def _serve(self) -> None:
        while True:
            fn, box, done = self._jobs.get()
            try:
                box.append((True, fn()))
            except BaseException as exc:  # handed back to the caller
                box.append((False, exc))
            finally:
                done.set()


_numerics = _NumericsThread()


def on_numerics_thread(fn: Callable[[], T]) -> T:
    """Run ``fn()`` on the process's numerics thread and return its result (or raise its
    exception). Calls from that thread run at once; others wait their turn, in order."""
    return _numerics.call(fn)
