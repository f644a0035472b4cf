"""SendGrid v3: request bodies (and, with the delivery issue, the HTTP client)."""
