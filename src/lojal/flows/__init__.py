"""Prefect flows: thin wiring of `lojal.pipeline`."""
