"""How long-running work reports progress without knowing who listens (a rich bar in a
terminal, nothing in CI). The CLI installs an observer; flows and pipelines only call it."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Protocol


class Observer(Protocol):
    def stage(self, name: str) -> None: ...
    def campaign_started(self, campaign_id: str, total: int) -> None: ...
    def advanced(self, campaign_id: str, count: int) -> None: ...


class Silent:
    def stage(self, name: str) -> None:
        pass

    def campaign_started(self, campaign_id: str, total: int) -> None:
        pass

    def advanced(self, campaign_id: str, count: int) -> None:
        pass


_current: Observer = Silent()


def observer() -> Observer:
    return _current


@contextmanager
def observing(obs: Observer) -> Iterator[Observer]:
    global _current
    previous, _current = _current, obs
    try:
        yield obs
    finally:
        _current = previous
