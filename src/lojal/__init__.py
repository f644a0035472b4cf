"""Lojal: a code-first retention e-mail engine for online shops."""

__version__ = "0.1.0"
