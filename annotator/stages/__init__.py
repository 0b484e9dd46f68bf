"""Built-in stages, in flow order; importing this package registers them."""

from annotator.stages import (
    assemble,
    caption,
    detect,
    filter,
    ingest,
    link,
    phrases,
    review_gate,
    segment,
    source,
    tag,
    track,
)

__all__ = ["assemble", "caption", "detect", "filter", "ingest", "link", "phrases", "review_gate", "segment", "source",
           "tag", "track"]
