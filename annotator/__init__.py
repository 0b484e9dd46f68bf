"""annotator: videos in, grounded video conversation (GCG) datasets out."""

__version__ = "0.1.0"
