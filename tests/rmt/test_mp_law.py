"""Tests of the Marchenko–Pastur law (THEORY.md Theorem 2.2, Remark 2.3, 2.4; ALGORITHMS.md 1.3, 1.8; E1, E2).

Every check is written as a small function that returns whether a candidate law passes, so that the
same check can be shown to reject a known-bad law (wrong ratio convention, CDF without the atom).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate

from rmt.errors import InvalidParameterError
from rmt.esd import eig_esd, ks_distance, sv_esd
from rmt.mp_law import (
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
from rmt.tracy_widom import wishart_edge_scaling

ratios = st.floats(min_value=math.log(0.01), max_value=math.log(100.0)).map(math.exp)
variances = st.floats(min_value=0.05, max_value=20.0)


# -- mass, density and CDF ---------------------------------------------------------------------------
def _quad_density(law: MarchenkoPastur, a: float, b: float) -> float:
    """Adaptive quadrature of the continuous density on [a, b] (the 1/sqrt singularities at the edges
    and, for c = 1, at 0 are integrable)."""
    lm, span = law.lambda_minus, law.lambda_plus - law.lambda_minus
    grades = 10.0 ** -np.arange(1, 9)
    breaks = np.concatenate([[lm, law.lambda_plus], lm + span * grades, law.lambda_plus - span * grades])
    if lm > 0.0:  # for c near 1 the factor 1/x varies on the scale lambda_-
        breaks = np.concatenate([breaks, lm * (1.0 + 10.0 ** np.arange(-2, 6))])
    points = sorted(float(p) for p in breaks if a < p < b)
    value, _ = integrate.quad(law.pdf, a, b, points=points or None, limit=400, epsabs=1e-14, epsrel=1e-12)
    return value


def mass_check(cdf, pdf_mass: float, atom: float, lam_plus: float, tol: float = 1e-8) -> bool:
    """A law's CDF must jump by the atom at 0, reach 1 at lambda_+, and the atom plus the integral of the
    density must be 1."""
    jump = float(cdf(0.0)) - float(cdf(np.nextafter(0.0, -1.0)))
    return abs(jump - atom) <= tol and abs(float(cdf(lam_plus)) - 1.0) <= tol and abs(atom + pdf_mass - 1.0) <= tol


@given(ratio=ratios, sigma2=variances)
def test_density_integrates_to_one_minus_atom(ratio, sigma2):
    law = MarchenkoPastur(ratio, sigma2)
    mass = _quad_density(law, law.lambda_minus, law.lambda_plus)
    assert law.atom == pytest.approx(max(0.0, 1.0 - 1.0 / ratio), abs=1e-15)
    assert abs(mass - (1.0 - law.atom)) <= 1e-8
    assert mass_check(law.cdf, mass, law.atom, law.lambda_plus)
    # the quadrature of the spec (sin^2 substitution) gives the same mass
    assert abs(law.expect_continuous(np.ones_like) - (1.0 - law.atom)) <= 1e-8


@pytest.mark.parametrize("ratio", [2.0, 4.0, 25.0])
def test_mass_check_rejects_cdf_without_atom(ratio):
    """Known-bad: a CDF that forgets the atom (only the continuous part) fails the mass check."""
    law = MarchenkoPastur(ratio, 1.0)
    mass = _quad_density(law, law.lambda_minus, law.lambda_plus)
    cdf_without_atom = lambda x: (1.0 - law.atom) * law._core_cdf(np.asarray(x, dtype=np.float64))  # noqa: E731
    renormalised_without_atom = lambda x: law._core_cdf(np.asarray(x, dtype=np.float64))  # noqa: E731
    assert mass_check(law.cdf, mass, law.atom, law.lambda_plus)
    assert not mass_check(cdf_without_atom, mass, law.atom, law.lambda_plus)
    assert not mass_check(renormalised_without_atom, mass, law.atom, law.lambda_plus)


def test_density_nonnegative_and_zero_outside_support():
    for ratio in (0.1, 1.0, 3.0):
        law = MarchenkoPastur(ratio, 1.5)
        x = np.linspace(-1.0, law.lambda_plus * 1.5, 2001)
        dens = law.pdf(x)
        assert np.all(dens >= 0.0)
        assert np.all(dens[(x < law.lambda_minus) | (x > law.lambda_plus)] == 0.0)


@pytest.mark.parametrize("ratio", [0.25, 1.0 / 3.0, 0.5, 1.0, 2.0, 3.0, 4.0])
def test_closed_form_cdf_equals_quadrature(ratio):
    """ALGORITHMS.md 1.8 item 1: |F_MP - quad(density)| < 1e-9 (gamma in {1/4, 1/3, 1/2, 1}; c > 1 too)."""
    law = MarchenkoPastur(ratio, 0.7)
    xs = np.linspace(law.lambda_minus, law.lambda_plus, 23)[1:-1]
    for x in xs:
        quad = law.atom + _quad_density(law, law.lambda_minus, x)
        assert abs(float(law.cdf(x)) - quad) < 1e-9


def test_cdf_monotone_and_sf_complement():
    for ratio in (0.05, 0.5, 1.0, 2.0, 50.0):
        law = MarchenkoPastur(ratio, 2.0)
        x = np.linspace(-0.5, law.lambda_plus * 1.2, 4001)
        f = law.cdf(x)
        assert np.all(np.diff(f) >= 0.0)
        assert np.all((f >= 0.0) & (f <= 1.0))
        assert np.max(np.abs(law.sf(x) + f - 1.0)) <= 1e-15


# -- moments --------------------------------------------------------------------------------------------
def _symbolic_moment(k: int, c: sp.Rational, s2: sp.Rational) -> sp.Expr:
    """Exact ``int x^k dmu_MP`` (the atom contributes 0 for k >= 1): substitute x = m + r cos t with
    m = s2 (1 + c), r = 2 s2 sqrt(c), so that sqrt((l+ - x)(x - l-)) dx = r^2 sin^2 t dt."""
    t = sp.symbols("t")
    m, r = s2 * (1 + c), 2 * s2 * sp.sqrt(c)
    integrand = sp.expand((m + r * sp.cos(t)) ** (k - 1) * r**2 * sp.sin(t) ** 2)
    return sp.nsimplify(sp.simplify(sp.integrate(integrand, (t, 0, sp.pi)) / (2 * sp.pi * c * s2)))


def _symbolic_narayana(k: int, c: sp.Rational, s2: sp.Rational) -> sp.Expr:
    return s2**k * sum(c**j / (j + 1) * sp.binomial(k, j) * sp.binomial(k - 1, j) for j in range(k))


@pytest.mark.parametrize(
    "c, s2",
    [(sp.Rational(1, 4), sp.Rational(3, 2)), (sp.Integer(4), sp.Rational(1, 2)), (sp.Rational(9, 4), sp.Integer(1))]
)
def test_moments_equal_narayana_symbolically(c, s2):
    for k in range(1, 5):
        exact = _symbolic_moment(k, c, s2)
        assert sp.simplify(exact - _symbolic_narayana(k, c, s2)) == 0
        assert narayana_moment(k, float(c), float(s2)) == pytest.approx(float(exact), rel=1e-14)
    # known-bad: the Narayana sum without the 1/(j+1) factor is not the moment
    wrong = s2**3 * sum(c**j * sp.binomial(3, j) * sp.binomial(2, j) for j in range(3))
    assert sp.simplify(_symbolic_moment(3, c, s2) - wrong) != 0


@given(ratio=ratios, sigma2=variances, k=st.integers(min_value=1, max_value=6))
def test_moments_numerically(ratio, sigma2, k):
    law = MarchenkoPastur(ratio, sigma2)
    numeric = law.expect_continuous(lambda x: x**k)
    assert numeric == pytest.approx(law.moment(k), rel=1e-9)
    assert law.mean() == pytest.approx(sigma2, rel=1e-14)
    assert law.moment(2) == pytest.approx(sigma2**2 * (1.0 + ratio), rel=1e-13)
    assert law.var() == pytest.approx(sigma2**2 * ratio, rel=1e-9)


# -- quantiles --------------------------------------------------------------------------------------------
@given(ratio=ratios, sigma2=variances, q=st.floats(min_value=0.0, max_value=1.0))
def test_cdf_of_ppf_is_identity_above_atom(ratio, sigma2, q):
    law = MarchenkoPastur(ratio, sigma2)
    x = float(law.ppf(q))
    if law.atom > 0.0 and q <= law.atom:
        assert x == 0.0
    else:
        assert law.lambda_minus <= x <= law.lambda_plus
        assert abs(float(law.cdf(x)) - q) <= 1e-11


@given(ratio=ratios, sigma2=variances)
def test_ppf_and_cdf_exact_at_edges(ratio, sigma2):
    law = MarchenkoPastur(ratio, sigma2)
    lm, lp = mp_edges(ratio, sigma2)
    assert float(law.ppf(1.0)) == lp
    assert float(law.cdf(lp)) == 1.0 and float(law.sf(lp)) == 0.0
    assert float(law.cdf(lm)) == law.atom
    if law.atom > 0.0:
        assert float(law.ppf(0.0)) == 0.0 and float(law.ppf(law.atom)) == 0.0
        assert float(law.cdf(0.0)) == law.atom
    else:
        assert float(law.ppf(0.0)) == lm


# -- singular-value convention ----------------------------------------------------------------------------
@given(
    n=st.integers(min_value=1, max_value=4000),
    k=st.sampled_from([0.25, 0.5, 1.0, 2.0, 3.0]),
    s2=variances,
)
def test_singular_law_edges_and_moments(n, k, s2):
    m = max(1, int(round(k * n)))
    ratio = m / n
    sing = MarchenkoPasturSingular(ratio, s2, n)
    s = math.sqrt(s2)
    lo, hi = singular_edges(n, m, s2)
    assert sing.sigma_plus == pytest.approx(s * (math.sqrt(n) + math.sqrt(m)), rel=1e-12)
    assert sing.sigma_minus == pytest.approx(s * abs(math.sqrt(n) - math.sqrt(m)), rel=1e-9, abs=1e-9 * hi)
    assert (lo, hi) == pytest.approx((sing.sigma_minus, sing.sigma_plus), rel=1e-9, abs=1e-9 * hi)
    # E[y^2] over the min(N, M) singular values = ||W||_F^2 / min(N, M) -> s2 * max(N, M)
    # (= N s2 only when c <= 1; for c > 1 the atom is removed and the rest renormalised)
    assert sing.moment(2) == pytest.approx(s2 * max(n, m), rel=1e-9)
    assert float(sing.cdf(sing.sigma_plus)) == 1.0
    assert float(sing.ppf(1.0)) == pytest.approx(sing.sigma_plus, rel=1e-15)


@pytest.mark.parametrize("ratio", [0.25, 1.0, 4.0])
def test_singular_cdf_matches_its_density(ratio):
    sing = MarchenkoPasturSingular(ratio, 0.5, 64)
    for y in np.linspace(sing.sigma_minus, sing.sigma_plus, 9)[1:-1]:
        pts = [sing.sigma_minus] if sing.sigma_minus > 0 else None
        quad, _ = integrate.quad(sing.pdf, 0.0, y, points=pts, limit=400, epsabs=1e-13)
        assert abs(float(sing.cdf(y)) - quad) < 1e-8
        assert abs(float(sing.cdf(sing.ppf(float(sing.cdf(y))))) - float(sing.cdf(y))) < 1e-11
    assert float(sing.sf(sing.sigma_minus)) + float(sing.cdf(sing.sigma_minus)) == 1.0


@given(n=st.integers(min_value=1, max_value=10_000), ratio=ratios, g=variances)
def test_conversion_helpers_round_trip(n, ratio, g):
    lam = np.array([0.0, 0.3, g])
    assert np.allclose(lambda_from_sigma(sigma_from_lambda(lam, n), n), lam, rtol=1e-14, atol=0.0)
    sp_ = sigma_plus_from_g(g, ratio)
    assert sp_ == pytest.approx(math.sqrt(g) * (1.0 + math.sqrt(ratio)), rel=1e-14)
    assert g_from_sigma_plus(sp_, ratio) == pytest.approx(g, rel=1e-13)
    # entry variance s^2 = g/N: sigma_+ = sqrt(N lambda_+) = sqrt(g)(1 + sqrt(c)) (THEORY 2.4)
    lam_plus = mp_edges(ratio, g / n)[1]
    assert float(sigma_from_lambda(lam_plus, n)) == pytest.approx(sp_, rel=1e-13)


# -- simulated matrices (E1, E2) ----------------------------------------------------------------------------
def _entries(kind: str, rng: np.random.Generator, shape: tuple[int, int], s2: float) -> np.ndarray:
    if kind == "gaussian":
        return rng.standard_normal(shape) * math.sqrt(s2)
    return rng.choice([-1.0, 1.0], size=shape) * math.sqrt(s2)


def mp_ks(w: np.ndarray, law: MarchenkoPastur) -> float:
    """KS distance between the eigenvalue ESD of W^T W / N (zero-clipped) and the law (atom included)."""
    esd = eig_esd(w.T @ w / w.shape[0])
    return ks_distance(esd, law.cdf, jump_points=(0.0,))


SIM_CASES = [  # (N, c, sigma2, entries, seed)
    (200, 0.25, 1.0, "gaussian", 1),
    (200, 4.0, 0.5, "gaussian", 2),
    (500, 0.5, 2.0, "gaussian", 3),
    (400, 1.0, 1.0, "gaussian", 4),
    (300, 2.0, 1.0, "rademacher", 5),
    (400, 0.5, 0.5, "rademacher", 6),
]


@pytest.mark.parametrize("n, c, s2, kind, seed", SIM_CASES)
def test_esd_of_simulated_matrix_follows_mp(n, c, s2, kind, seed):
    """E1 + E2: KS <= 0.01 + 4/min(N, M) for the eigenvalue and the singular-value ESD; top edge within
    a Tracy–Widom-scaled distance; moments within 3% / 5%."""
    m = int(c * n)
    w = _entries(kind, np.random.default_rng(seed), (n, m), s2)
    law = MarchenkoPastur(m / n, s2)
    tol = 0.01 + 4.0 / min(n, m)
    assert mp_ks(w, law) <= tol
    sing = MarchenkoPasturSingular(m / n, s2, n)
    sv = sv_esd(w)
    assert ks_distance(sv, sing.cdf) <= tol
    # edges: Johnstone scaling and the relative E2 rule
    edge = wishart_edge_scaling(n, m, s2)
    s1 = float(sv.values[-1])
    assert abs(s1 - edge.center_singular) <= 6.0 * edge.scale_singular
    assert abs(s1**2 / n / law.lambda_plus - 1.0) <= 3.0 * min(n, m) ** (-2.0 / 3.0)
    # moments of the eigenvalue ESD (atom included)
    eig = eig_esd(w.T @ w / n)
    assert eig.moment(1) == pytest.approx(s2, rel=0.03)
    assert eig.moment(2) == pytest.approx(s2**2 * (1.0 + m / n), rel=0.05)


@pytest.mark.parametrize("n, c, s2, kind, seed", SIM_CASES[:3])
def test_ks_check_rejects_swapped_ratio_convention(n, c, s2, kind, seed):
    """Known-bad: the law with c = N/M instead of M/N fails the KS and the edge checks."""
    m = int(c * n)
    w = _entries(kind, np.random.default_rng(seed), (n, m), s2)
    bad = MarchenkoPastur(n / m, s2)
    assert mp_ks(w, bad) > 0.01 + 4.0 / min(n, m)
    s1 = float(np.linalg.norm(w, 2))
    assert abs(s1**2 / n / bad.lambda_plus - 1.0) > 3.0 * min(n, m) ** (-2.0 / 3.0)


def test_ks_distance_shrinks_with_size():
    """E1 trend: mean KS over 3 seeds at N = 800 is below the mean at N = 100 (c = 0.5, Gaussian)."""
    law = MarchenkoPastur(0.5, 1.0)

    def mean_ks(n: int) -> float:
        return float(np.mean([mp_ks(_entries("gaussian", np.random.default_rng(100 + s), (n, n // 2), 1.0), law)
                              for s in range(3)]))

    small, large = mean_ks(100), mean_ks(800)
    assert large < 0.5 * small


# -- bad input ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ratio", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_ratio_raises(ratio):
    with pytest.raises(InvalidParameterError, match="ratio"):
        MarchenkoPastur(ratio)
    with pytest.raises(InvalidParameterError, match="ratio"):
        mp_edges(ratio)


@pytest.mark.parametrize("sigma2", [0.0, -2.0, float("nan")])
def test_bad_variance_raises(sigma2):
    with pytest.raises(InvalidParameterError, match="sigma2"):
        MarchenkoPastur(1.0, sigma2)


@pytest.mark.parametrize("q", [-0.1, 1.1, float("nan")])
def test_bad_probability_raises(q):
    with pytest.raises(InvalidParameterError, match="probabilities"):
        MarchenkoPastur(0.5).ppf(q)
    with pytest.raises(InvalidParameterError, match="probabilities"):
        MarchenkoPasturSingular(0.5, 1.0, 10).ppf(np.array([0.5, q]))


def test_bad_shapes_raise():
    with pytest.raises(InvalidParameterError, match="n_rows"):
        MarchenkoPastur(0.5).n_cols_for(0)
    with pytest.raises(InvalidParameterError, match="ratio"):
        MarchenkoPastur(0.3).n_cols_for(7)
    with pytest.raises(InvalidParameterError, match="moment order"):
        narayana_moment(1.5, 1.0)
    with pytest.raises(InvalidParameterError, match="n_cols"):
        singular_edges(3, 0)


def test_cdf_is_exactly_the_atom_at_the_lower_edge_regression():
    """Found by hypothesis in a whole-suite run: for c > 1, ``lambda_- / c`` rounded above the inner law's
    lower edge and the CDF at ``lambda_-`` exceeded the atom by one ulp."""
    ratio, sigma2 = float(np.exp(0.357421875)), 0.3576234919612471
    law = MarchenkoPastur(ratio, sigma2)
    lm, _ = mp_edges(ratio, sigma2)
    assert float(law.cdf(lm)) == law.atom


# --- bad input (issue 19, item 10) ------------------------------------------------------------------


@given(st.floats(0.05, 4.0), st.lists(st.one_of(st.floats(-1.0, 12.0), st.just(float("nan"))), min_size=1, max_size=8))
def test_nan_arguments_give_nan_like_scipy(ratio, values):
    """NaN in, NaN out at exactly those positions; the other entries are the NaN-free evaluation.
    Known-bad: the old ``np.where`` chains turned NaN into pdf 0, cdf 0, sf 1."""
    from rmt.mp_law import MarchenkoPasturSingular

    x = np.asarray(values)
    nan = np.isnan(x)
    for law in (MarchenkoPastur(ratio, 1.3), MarchenkoPasturSingular(ratio, 1.3, 20)):
        for method in (law.pdf, law.cdf, law.sf):
            out = method(x)
            assert np.array_equal(np.isnan(out), nan), (method, x, out)
            assert np.array_equal(out[~nan], method(x[~nan]))


@pytest.mark.parametrize("ratio", ["0.5", True, np.array([0.5, 1.0]), None, np.bool_(True)])
def test_a_ratio_that_is_not_a_real_number_is_refused(ratio):
    with pytest.raises(InvalidParameterError, match="ratio must be a real number > 0"):
        MarchenkoPastur(ratio)


@pytest.mark.parametrize("n_rows", [2.5, 2.0, "3", True, 0])
def test_n_rows_must_be_a_whole_number(n_rows):
    """Known-bad: ``MarchenkoPasturSingular(0.5, 1, 2.5)`` used 2 rows silently."""
    from rmt.mp_law import MarchenkoPasturSingular

    with pytest.raises(InvalidParameterError, match="n_rows must be an integer >= 1"):
        MarchenkoPasturSingular(0.5, 1.0, n_rows)
    with pytest.raises(InvalidParameterError, match="n_rows must be an integer >= 1"):
        MarchenkoPastur(0.5).n_cols_for(n_rows)


def test_rvs_refuses_an_output_beyond_the_limit_with_its_size():
    from rmt.mp_law import MAX_RVS_BYTES, MarchenkoPasturSingular

    with pytest.raises(InvalidParameterError, match=r"size=1000000000: the output of 1000000000 x 2 float64 values"):
        MarchenkoPasturSingular(0.5, 1.0, 4).rvs(10**9)
    with pytest.raises(InvalidParameterError, match="size=1000000000"):
        MarchenkoPastur(0.5).rvs(4, size=10**9)
    with pytest.raises(InvalidParameterError, match="size must be an integer >= 0"):
        MarchenkoPastur(0.5).rvs(4, size=-1)
    assert MarchenkoPastur(0.5).rvs(4, size=3, random_state=0).shape == (3, 2)
    assert MAX_RVS_BYTES >= 2**20
