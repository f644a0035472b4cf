"""BG/NBD ("buy till you die", Fader, Hardie & Lee 2005): probability a customer is still active
and expected purchases in a coming period, fitted by maximum likelihood.

Inputs per buyer, in one time unit (weeks here): x = repeat purchases, t_x = time from first to
last purchase, T = time from first purchase to the end of observation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

# Fit on at most this many buyers (a fixed-seed sample): four parameters are pinned down well
# long before a million rows, and the optimiser evaluates the likelihood a few hundred times.
MAX_FIT_CUSTOMERS = 100_000
MIN_FIT_CUSTOMERS = 20


@dataclass(frozen=True)
class BgNbdParams:
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float


def log_likelihood(r: float, alpha: float, a: float, b: float,
                   x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Per-customer log-likelihood (equation 6 of Fader, Hardie & Lee 2005)."""
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x) - betaln(a, b)
    a3 = -(r + x) * np.log(alpha + T)
    repeat = x > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(repeat, np.log(a) - np.log(b + x - 1) - (r + x) * np.log(alpha + t_x), -np.inf)
    return a1 + a2 + np.logaddexp(a3, a4)


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> BgNbdParams:
    """Maximum-likelihood r, alpha, a, b (optimised on log-parameters so they stay positive)."""
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))

    def negative(log_params: np.ndarray) -> float:
        r, alpha, a, b = np.exp(log_params)
        value = -log_likelihood(r, alpha, a, b, x, t_x, T).sum()
        return value if np.isfinite(value) else 1e300

    start = np.log([1.0, max(float(np.mean(T)), 1e-3), 1.0, 1.0])
    result = minimize(negative, start, method="L-BFGS-B")
    if not result.success:  # the gradient-free simplex is slower but does not stall on flat or rough ground
        result = minimize(negative, result.x, method="Nelder-Mead",
                          options={"xatol": 1e-7, "fatol": 1e-7, "maxiter": 4000, "maxfev": 8000})
    r, alpha, a, b = np.exp(result.x)
    return BgNbdParams(float(r), float(alpha), float(a), float(b), float(-result.fun))


def probability_alive(p: BgNbdParams, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """P(still active | x, t_x, T); 1 for customers without repeat purchases (model assumption)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = np.where(x > 0, p.a / (p.b + x - 1) * ((p.alpha + T) / (p.alpha + t_x)) ** (p.r + x), 0.0)
    return 1.0 / (1.0 + odds)


def expected_purchases(p: BgNbdParams, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """E[purchases in (T, T + t] | x, t_x, T] (equation 10 of Fader, Hardie & Lee 2005)."""
    z = t / (p.alpha + T + t)
    hyp = hyp2f1(p.r + x, p.b + x, p.a + p.b + x - 1, z)
    head = (p.a + p.b + x - 1) / (p.a - 1)
    body = 1.0 - ((p.alpha + T) / (p.alpha + T + t)) ** (p.r + x) * hyp
    return head * body * probability_alive(p, x, t_x, T)


def fit_sample(x: np.ndarray, t_x: np.ndarray, T: np.ndarray, seed: int = 0) -> BgNbdParams | None:
    """Fit on all buyers, or a fixed-seed sample of MAX_FIT_CUSTOMERS; None if too few buyers."""
    n = len(x)
    if n < MIN_FIT_CUSTOMERS:
        return None
    if n > MAX_FIT_CUSTOMERS:
        pick = np.random.default_rng(seed).choice(n, MAX_FIT_CUSTOMERS, replace=False)
        x, t_x, T = x[pick], t_x[pick], T[pick]
    return fit_bgnbd(x, t_x, T)
