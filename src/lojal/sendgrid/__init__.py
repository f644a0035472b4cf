"""SendGrid, in one package (anymail-style):

    payload    the v3 Mail Send request body of a message
    transport  the pooled keep-alive HTTP client and SendGrid's answers mapped to outcomes
    backend    SendGridBackend, the DeliveryBackend (API key, LOJAL_SENDGRID_URL)
    events     Event Webhook events normalized into DeliveryEvent, and their store
    webhook    ECDSA P-256 signatures of the Event Webhook (verify; sign for the local SendGrid)
    app        the Event Webhook receiver (ASGI), `lojal webhook serve`
    rules      what Mail Send rejects, as a pure function
    local      the strict local SendGrid, `lojal sendgrid-local`
    cli        the two commands
"""
