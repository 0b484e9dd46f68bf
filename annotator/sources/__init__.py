"""Readers that turn source datasets (masks, boxes, expressions) into `VideoItem` records."""
