"""Thread limits for fitting and predicting on a small, possibly busy machine.

Histogram gradient boosting's OpenMP threads spin-wait on each other: on a busy 2-core
machine a 0.2 s fit or a holdout prediction takes seconds to tens of seconds with two
threads, and one thread is fastest at these sizes. Scoring many rows gets its parallelism
from row chunks instead (models.scoring), each chunk on one thread.
"""

from __future__ import annotations

from threadpoolctl import threadpool_limits

OPENMP_THREADS = 1
# Random forest trees are independent, so fitting them on both cores changes nothing in the
# result (each tree has its own seed); predictions stay sequential, so the sum over trees is
# always taken in the same order and probabilities are bit-for-bit repeatable.
FOREST_FIT_JOBS = 2


def openmp_limited() -> threadpool_limits:
    """A context in which OpenMP code (HistGradientBoosting) uses OPENMP_THREADS threads."""
    return threadpool_limits(OPENMP_THREADS, user_api="openmp")
