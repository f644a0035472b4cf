"""The CLI consoles measure the terminal when they print (parallel test runs import CLI modules in any order)."""
from __future__ import annotations

from lojal.console import make_console


def test_a_console_made_under_a_narrow_terminal_prints_at_the_width_of_the_print(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    console = make_console(soft_wrap=True)
    assert console.width == 40
    monkeypatch.setenv("COLUMNS", "160")
    assert console.width == 160
    with console.capture() as captured:
        console.print("x" * 120, soft_wrap=False)
    assert "x" * 120 in captured.get()


def test_an_explicit_width_still_wins(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    console = make_console(width=100)
    monkeypatch.setenv("COLUMNS", "160")
    assert console.width == 100
