"""annotator: videos in, grounded video conversation (GCG) datasets out."""

import os

# Arrow's default allocators (mimalloc, and jemalloc with its arenas) keep freed memory for reuse: after a run's
# thousands of small checkpoint writes, the end of a run's reads of large index tables came on top of it (at
# 50,000 videos the driver peaked 80 MB higher with mimalloc, 120 MB with jemalloc, than with the system
# allocator, which hands large blocks back as soon as they are freed). Read once, when pyarrow is first imported
# (so here, before any of our modules imports it); a value the user set stands. Ray workers inherit it.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

__version__ = "0.1.0"
