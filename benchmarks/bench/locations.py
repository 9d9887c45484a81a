"""Where the checkout being measured is."""

from __future__ import annotations

from pathlib import Path

# The checkout holding this folder (benchmarks/bench/): our CLI runs from its .venv by default, with it on
# PYTHONPATH and as its working directory, so that the tree being benchmarked is the one measured.
REPO = Path(__file__).resolve().parent.parent.parent
