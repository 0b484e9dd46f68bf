"""The companion trainer: a pixel-grounding video model trained on the dataset, and GCG evaluation."""
