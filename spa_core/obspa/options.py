"""OBSPA's option values, kept free of heavy imports so that ``spa``'s parser can read them."""

SYNTHESES = ("inversion", "bn", "gaussian")
"""Ways to make data-free inputs (:mod:`spa_core.obspa.synth`); the first is the default."""

DEFAULT_SAMPLES = {"inversion": 128, "bn": 256, "gaussian": 256}
"""Synthetic inputs per synthesis when ``samples`` is not given."""
