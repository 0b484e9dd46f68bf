"""Stand-ins tests and benchmarks share: an OpenAI-compatible fake server, an oracle tracker, calibrated fake stages."""
