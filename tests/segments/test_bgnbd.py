"""BG/NBD maximum likelihood: recovers known parameters and reproduces the published CDNOW fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lojal.features.bgnbd import BgNbdParams, expected_purchases, fit_bgnbd, probability_alive

# Fader, Hardie & Lee (2005), CDNOW calibration sample (2,357 customers, weeks).
PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
CDNOW = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "cdnow" / "cdnow_customers_summary.csv"


def simulate(n: int, seed: int, r: float, alpha: float, a: float, b: float) -> tuple[np.ndarray, ...]:
    """Customers as the BG/NBD story tells it: Poisson purchases at rate lambda ~ Gamma(r, alpha) until
    they drop out with probability p ~ Beta(a, b) after each purchase; first purchase in weeks 0-12 of
    a 39-week window, like the CDNOW cohort."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(r, 1.0 / alpha, n)
    drop = rng.beta(a, b, n)
    T = 39.0 - rng.uniform(0, 12, n)
    x, t_x, now = np.zeros(n), np.zeros(n), np.zeros(n)
    active = np.ones(n, dtype=bool)
    while active.any():
        now = now + np.where(active, rng.exponential(1.0 / np.maximum(rate, 1e-12)), 0.0)
        bought = active & (now <= T)
        x += bought
        t_x = np.where(bought, now, t_x)
        active = bought & (rng.uniform(size=n) >= drop)
    return x, t_x, T


def test_fit_recovers_the_parameters_it_was_simulated_with():
    x, t_x, T = simulate(20_000, seed=7, **PUBLISHED)
    fitted = fit_bgnbd(x, t_x, T)
    assert fitted.r == pytest.approx(PUBLISHED["r"], rel=0.08)
    assert fitted.alpha == pytest.approx(PUBLISHED["alpha"], rel=0.12)
    assert fitted.a == pytest.approx(PUBLISHED["a"], rel=0.12)
    assert fitted.b == pytest.approx(PUBLISHED["b"], rel=0.15)


def test_fit_matches_the_published_cdnow_estimates():
    if not CDNOW.exists():
        pytest.skip(f"../shared/datasets/cdnow not present: {CDNOW} is only in the project's shared data folder")
    summary = pd.read_csv(CDNOW)
    fitted = fit_bgnbd(summary["frequency"].to_numpy(), summary["recency"].to_numpy(), summary["T"].to_numpy())
    for name, value in PUBLISHED.items():
        assert getattr(fitted, name) == pytest.approx(value, rel=1e-2), name
    assert fitted.log_likelihood == pytest.approx(-9582.4, abs=0.1)
    # The paper's worked example: x = 2, t_x = 30.43, T = 38.86 expects 1.226 purchases in the next 39 weeks.
    example = expected_purchases(fitted, 39.0, np.array([2.0]), np.array([30.43]), np.array([38.86]))
    assert example[0] == pytest.approx(1.226, abs=1e-3)


def test_probability_alive_behaves_like_the_model_says():
    p = BgNbdParams(**PUBLISHED, log_likelihood=0.0)
    no_repeat = probability_alive(p, np.array([0.0]), np.array([0.0]), np.array([30.0]))
    assert no_repeat[0] == 1.0
    # Same history, longer silence since the last purchase: less likely to be alive.
    silence = probability_alive(p, np.array([3.0, 3.0]), np.array([10.0, 10.0]), np.array([20.0, 40.0]))
    assert 0 < silence[1] < silence[0] < 1
    ahead = expected_purchases(p, 13.0, np.array([3.0, 3.0]), np.array([10.0, 10.0]), np.array([20.0, 40.0]))
    assert 0 < ahead[1] < ahead[0]
