"""The lift estimator on simulated campaigns with a known effect, and A/B winners."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from lojal.tracking.lift import Observation, compare_arms, lift

P_HELD, P_MAILED = 0.05, 0.06
MEAN_VALUE = Decimal("500.00")  # customer value: uniform over the cents 100.00 .. 900.00
TRUE_RATE_LIFT = Decimal("0.01")
TRUE_REVENUE_LIFT = (Decimal(str(P_MAILED)) - Decimal(str(P_HELD))) * MEAN_VALUE  # 5.00 per recipient


def simulate(rng: np.random.Generator, n: int = 2000) -> list[Observation]:
    rows = []
    for group, p in (("mailed", P_MAILED), ("held_out", P_HELD)):
        value = rng.integers(10000, 90001, n)  # cents, independent of everything else
        earlier = rng.random(n) < 0.25  # a quarter bought in the pre-period (spent their value)...
        converted = rng.random(n) < (p - 0.04) + 0.16 * earlier  # ...and convert more often; mean rate stays p
        for v, c, k in zip(value, converted, earlier):
            cents = Decimal(int(v)) / 100
            rows.append(Observation(group, bool(c), cents if c else Decimal(0), cents * int(k)))
    return rows


@pytest.mark.slow
def test_the_95_interval_covers_the_true_lift_in_93_to_97_percent_of_400_simulations():
    rng = np.random.default_rng(20261130)
    covered = {"rate": 0, "revenue": 0, "cuped": 0}
    widths = {"revenue": [], "cuped": []}
    for _ in range(400):
        rows = simulate(rng)
        plain, adjusted = lift(rows), lift(rows, cuped=True)
        covered["rate"] += plain.conversion_rate.covers(TRUE_RATE_LIFT)
        covered["revenue"] += plain.revenue_per_recipient.covers(TRUE_REVENUE_LIFT)
        covered["cuped"] += adjusted.revenue_per_recipient.covers(TRUE_REVENUE_LIFT)
        widths["revenue"].append(plain.revenue_per_recipient.high - plain.revenue_per_recipient.low)
        widths["cuped"].append(adjusted.revenue_per_recipient.high - adjusted.revenue_per_recipient.low)
    for name, count in covered.items():
        assert 372 <= count <= 388, f"{name}: the interval covered the true lift in {count} of 400"
    assert sum(widths["cuped"]) < sum(widths["revenue"]) * Decimal("0.97")  # CUPED narrows the interval


def test_money_is_exact_and_the_groups_are_counted():
    rows = [Observation("mailed", True, Decimal("0.10"))] * 3 + [Observation("mailed", False, Decimal(0))] * 7 + \
           [Observation("held_out", True, Decimal("0.20"))] * 1 + [Observation("held_out", False, Decimal(0))] * 9
    result = lift(rows)
    assert result.mailed.revenue == Decimal("0.30") and result.held_out.revenue == Decimal("0.20")
    assert result.mailed.conversion_rate == Decimal("0.3") and result.held_out.recipients == 10
    assert result.revenue_per_recipient.estimate == Decimal("0.01")
    assert result.incremental_revenue == Decimal("0.10")
    assert result.as_dict()["mailed"]["revenue"] == "0.30"


def test_no_interval_without_a_held_out_group():
    result = lift([Observation("mailed", True, Decimal(5))] * 10)
    assert result.revenue_per_recipient is None and result.held_out.recipients == 0


def arms(rng, rates: dict[str, float], n: int) -> list[Observation]:
    return [Observation(arm, bool(c), Decimal(100) if c else Decimal(0))
            for arm, p in rates.items() for c in rng.random(n) < p]


def test_a_winner_is_named_only_past_confidence_and_minimum_sample():
    rng = np.random.default_rng(3)
    clear = compare_arms(arms(rng, {"A": 0.05, "B": 0.09}, 5000), confidence=0.95, min_sample=1000)
    assert clear.winner == "B" and "B wins" in clear.why
    small = compare_arms(arms(rng, {"A": 0.05, "B": 0.09}, 500), confidence=0.95, min_sample=1000)
    assert small.winner is None and small.best == "B" and "minimum sample" in small.why
    same = compare_arms(arms(rng, {"A": 0.05, "B": 0.05, "C": 0.05}, 3000), confidence=0.95, min_sample=1000)
    assert same.winner is None and "not better" in same.why


def test_equal_arms_rarely_get_a_winner():
    rng = np.random.default_rng(11)
    winners = sum(compare_arms(arms(rng, {"A": 0.05, "B": 0.05}, 2000), 0.95, 1000).winner is not None
                  for _ in range(200))
    assert winners <= 12  # about 5% of 200 by chance; never most of them
