"""Printed commands are pasted into the shell of the machine they were printed on."""

from __future__ import annotations

import shlex

import pytest

from repair import shellquote
from repair.settings import next_step_target

PATHS = [
    "/home/a/proj/.venv/bin/python",
    "/home/a b/proj/.venv/bin/python",
    "/opt/it's/python",
    "",
    r"C:\Users\A B\proj\.venv\Scripts\python.exe",
    r"C:\proj\.venv\Scripts\python.exe",
    r"C:\Program Files (x86)\Python311\python.exe",
    r"D:\a&b\python.exe",
]


@pytest.mark.parametrize("path", PATHS)
def test_posix_words_read_back_as_themselves(path: str) -> None:
    assert shlex.split(shellquote.quote(path, os_name="posix")) == [path]


@pytest.mark.parametrize("path", PATHS)
def test_windows_words_use_double_quotes_only_where_needed(path: str) -> None:
    word = shellquote.quote(path, os_name="nt")
    assert "'" not in word.replace(path, "")  # cmd.exe would keep single quotes as text
    plain = path and not any(c in path for c in " &()'")
    assert word == (path if plain else f'"{path}"')


def test_next_steps_go_through_the_one_quoting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shellquote, "quote", lambda arg, **_: f"<{arg}>")
    assert next_step_target(r"C:\A B\python.exe") == r" --python <C:\A B\python.exe>"
