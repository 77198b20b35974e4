"""OBSPA's option values, kept free of heavy imports so that ``spa``'s parser can read them."""

SYNTHESES = ("inversion-bn", "inversion", "bn", "gaussian")
"""Ways to make data-free inputs (:mod:`spa_core.obspa.synth`); the first is the default."""

DEFAULT_SAMPLES = {"inversion": 128, "inversion-bn": 128, "bn": 256, "gaussian": 256}
"""Synthetic inputs per synthesis when ``samples`` is not given."""

FROZEN_STATISTICS = ("bn", "inversion-bn")
"""Syntheses whose Hessians come from the model with every BatchNorm's running statistics
replaced by those of the synthetic inputs (:func:`spa_core.obspa.synth.bn_statistics`)."""

COMPENSATIONS = ("sequential", "independent")
"""How the kept weights are re-fitted (:mod:`spa_core.obspa.sequential`); the first is the default."""
