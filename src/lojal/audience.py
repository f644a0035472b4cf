"""The single gate every marketing send passes: consent, suppression, a valid address, one mailbox.

Segments describe who *matches*; this module decides who may be *mailed*. Marketers cannot
switch it off: no segment file or campaign setting reaches it. Addresses are compared by the one
address rule (`lojal.addresses`): suppressions by mailbox key, and two customers whose addresses
are the same mailbox (they differ only in case) are mailed once, as the lower customer id.
"""

from __future__ import annotations

import pandas as pd

from lojal.addresses import AddressError, parse
from lojal.store.shopdata import ShopData

# Exclusion reasons, in the order they are checked; a customer is counted under the first that applies.
NO_CONSENT = "no e-mail marketing consent"
SUPPRESSED = "on the suppression list"
INVALID_EMAIL = "invalid e-mail address"
NEEDS_SMTPUTF8 = INVALID_EMAIL + " for sending: non-ASCII characters before the @ need SMTPUTF8, which Lojal does not use"
SAME_MAILBOX = "same mailbox as another customer (addresses differ only in case)"


def _address_facts(emails: pd.Series) -> pd.DataFrame:
    """Per customer: mailbox key (None if invalid) and whether the address needs SMTPUTF8."""
    facts: dict[object, tuple[str | None, bool]] = {}
    for raw in pd.unique(emails.to_numpy()):
        try:
            address = parse(raw)
            facts[raw] = (address.key, address.smtputf8)
        except (AddressError, TypeError):
            facts[raw] = (None, False)
    return pd.DataFrame({"key": [facts[e][0] for e in emails], "smtputf8": [facts[e][1] for e in emails]},
                        index=emails.index)


def exclusion_reasons(data: ShopData, among: pd.Index | None = None) -> pd.Series:
    """Per customer: the first reason they may not be mailed, or None when they may. `among`: only
    these customers (one mailbox each among them). Each address is parsed once per loaded data, and
    the answer for all customers is kept: planning and its checks ask more than once a night."""
    if among is None:
        return data.derived("exclusion_reasons",
                            lambda: _exclusion_reasons(data.customers, _facts(data), data.suppressed_emails))
    return _exclusion_reasons(data.customers.reindex(among), _facts(data).reindex(among), data.suppressed_emails)


def _facts(data: ShopData) -> pd.DataFrame:
    return data.derived("address_facts", lambda: _address_facts(data.customers["email"]))


def _exclusion_reasons(customers: pd.DataFrame, facts: pd.DataFrame, suppressed_emails) -> pd.Series:
    reasons = pd.Series(None, index=customers.index, dtype=object)
    invalid = facts["key"].isna()
    smtputf8 = facts["smtputf8"].fillna(False).astype(bool)
    suppressed = facts["key"].isin(suppressed_emails)
    no_consent = ~customers["consent_email"].astype(bool)
    mailable = ~(invalid | smtputf8 | suppressed | no_consent)
    # Among the mailable, one customer per mailbox: the lowest customer id keeps it.
    keys = facts.loc[mailable, "key"].sort_index(kind="stable")
    twin = pd.Series(False, index=customers.index)
    twin[keys.index[keys.duplicated(keep="first").to_numpy()]] = True
    # Assign in reverse priority so the first reason wins.
    reasons[twin] = SAME_MAILBOX
    reasons[smtputf8] = NEEDS_SMTPUTF8
    reasons[invalid] = INVALID_EMAIL
    reasons[suppressed] = SUPPRESSED
    reasons[no_consent] = NO_CONSENT
    return reasons


def marketable_mask(data: ShopData) -> pd.Series:
    """True for customers who may receive marketing e-mail tonight."""
    return exclusion_reasons(data).isna()
