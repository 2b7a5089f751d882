"""Figures; all render headless (Agg)."""

import matplotlib

matplotlib.use("Agg")
