"""Closing the loop after delivery: signed unsubscribe tokens and the /unsubscribe endpoint
(`tokens`, `unsubscribe`), tracked-link message ids (`links`), attribution (`attribution`),
incremental lift (`lift`), SendGrid suppression sync (`sync`) and the marketer's report (`report`).
The suppression list's own operations are in `lojal.suppressions`."""
