"""isl: Incremental Sequence Learning (de Jong, 2016) as a Lightning + Hydra experiment system."""

__version__ = "0.1.0"
