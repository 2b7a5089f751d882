"""Stroke-sequence data: sources, builder, cache and the curriculum-aware DataModule."""
