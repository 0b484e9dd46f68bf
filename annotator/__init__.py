"""annotator: videos in, grounded video conversation (GCG) datasets out."""

import os

# Arrow's default allocator (mimalloc) keeps what a thread freed in that thread's heap: after a parallel read of
# many index parts a process stays at the read's peak for good. jemalloc hands freed pages back, so the driver's
# memory follows what it holds. Read once, when pyarrow is first imported (so here, before any of our modules
# imports it); a value the user set stands. Ray workers inherit it from the driver.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")

__version__ = "0.1.0"
