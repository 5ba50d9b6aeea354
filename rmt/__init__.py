"""rmt — the Marchenko–Pastur layer of mpcert (numpy + scipy only).

The MP law and its conventions (:mod:`rmt.mp_law`), the Tracy–Widom edge law
(:mod:`rmt.tracy_widom`), MP fits of weight spectra (:mod:`rmt.fit`), spikes and BBP maps
(:mod:`rmt.spikes`) and the Gaussian / sub-Gaussian data-path budgets (:mod:`rmt.budgets`).
"""

from .bounds import ESTIMATE, SOUND, Bound, round_up
from .errors import InvalidMatrixError, InvalidParameterError, MPCertError
from .mp_law import (
    MarchenkoPastur,
    MarchenkoPasturSingular,
    g_from_sigma_plus,
    lambda_from_sigma,
    mp_edges,
    narayana_moment,
    sigma_from_lambda,
    sigma_plus_from_g,
    singular_edges,
)
from .tracy_widom import WishartEdgeScaling, tw1_cdf, tw1_ppf, wishart_edge_scaling

__all__ = [
    "Bound",
    "SOUND",
    "ESTIMATE",
    "round_up",
    "MPCertError",
    "InvalidMatrixError",
    "InvalidParameterError",
    "MarchenkoPastur",
    "MarchenkoPasturSingular",
    "mp_edges",
    "singular_edges",
    "sigma_from_lambda",
    "lambda_from_sigma",
    "g_from_sigma_plus",
    "sigma_plus_from_g",
    "narayana_moment",
    "tw1_cdf",
    "tw1_ppf",
    "WishartEdgeScaling",
    "wishart_edge_scaling",
]
