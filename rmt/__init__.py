"""rmt — the Marchenko–Pastur layer of mpcert (numpy + scipy only).

The MP law and its conventions (:mod:`rmt.mp_law`), the Tracy–Widom edge law
(:mod:`rmt.tracy_widom`), MP fits of weight spectra (:mod:`rmt.fit`) with their calibrated spike count
(:mod:`rmt.spike_test`), spikes and BBP maps (:mod:`rmt.spikes`) and the Gaussian / sub-Gaussian data-path budgets
(:mod:`rmt.budgets`)::

    from rmt import MarchenkoPastur, fit_mp
    fit = fit_mp(weight)              # MPFit: noise variance, edges, spikes
    MarchenkoPastur(0.5).cdf(1.0)     # scipy-style frozen law
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
from .budgets import (
    BudgetBound,
    MultiLayerBudgetBounds,
    gaussian_budget_bound,
    mp_edge_budget_bound,
    multilayer_gaussian_budget_bounds,
    multilayer_subgaussian_budget_bounds,
    realised_budget,
    subgaussian_budget_bound,
)
from .esd import EmpiricalSpectrum, eig_esd, ks_distance, sv_esd
from .fit import MPFit, fit_mp, singular_values
from .spike_test import SpikeTestResult, sequential_tw_test
from .spikes import RectangularOutlierMap, bbp_edge, bbp_location, bbp_overlap, bbp_threshold, inverse_bbp
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
    "fit_mp",
    "MPFit",
    "singular_values",
    "sequential_tw_test",
    "SpikeTestResult",
    "EmpiricalSpectrum",
    "sv_esd",
    "eig_esd",
    "ks_distance",
    "bbp_threshold",
    "bbp_location",
    "bbp_edge",
    "inverse_bbp",
    "bbp_overlap",
    "RectangularOutlierMap",
    "BudgetBound",
    "MultiLayerBudgetBounds",
    "realised_budget",
    "gaussian_budget_bound",
    "mp_edge_budget_bound",
    "subgaussian_budget_bound",
    "multilayer_gaussian_budget_bounds",
    "multilayer_subgaussian_budget_bounds",
]
