"""Human review: the decisions store, the review server and its page, applying decisions to items."""
