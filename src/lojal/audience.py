"""The single gate every marketing send passes: consent, suppression, a valid address.

Segments describe who *matches*; this module decides who may be *mailed*. Marketers cannot
switch it off: no segment file or campaign setting reaches it.
"""

from __future__ import annotations

import pandas as pd

from lojal.store.shopdata import ShopData

# Exclusion reasons, in the order they are checked; a customer is counted under the first that applies.
NO_CONSENT = "no e-mail marketing consent"
SUPPRESSED = "on the suppression list"
INVALID_EMAIL = "invalid e-mail address"


def exclusion_reasons(data: ShopData) -> pd.Series:
    """Per customer: the first reason they may not be mailed, or None when they may."""
    customers = data.customers
    reasons = pd.Series(None, index=customers.index, dtype=object)
    emails = customers["email"].astype(str).str.strip().str.lower()
    invalid = ~emails.str.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+")
    suppressed = emails.isin(data.suppressed_emails)
    no_consent = ~customers["consent_email"].astype(bool)
    # Assign in reverse priority so the first reason wins.
    reasons[invalid] = INVALID_EMAIL
    reasons[suppressed] = SUPPRESSED
    reasons[no_consent] = NO_CONSENT
    return reasons


def marketable_mask(data: ShopData) -> pd.Series:
    """True for customers who may receive marketing e-mail tonight."""
    return exclusion_reasons(data).isna()
