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


@pytest.mark.parametrize(
    ("path", "word"),
    [
        (r"C:\Users\a$b\.venv\Scripts\python.exe", r"'C:\Users\a$b\.venv\Scripts\python.exe'"),
        (r"C:\it's `x\python.exe", r"'C:\it''s `x\python.exe'"),
    ],
)
def test_windows_words_powershell_would_expand_are_literals(path: str, word: str) -> None:
    # inside double quotes PowerShell reads $b as a variable and `x as an escape
    assert shellquote.quote(path, os_name="nt") == word


def test_next_steps_go_through_the_one_quoting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shellquote, "quote", lambda arg, **_: f"<{arg}>")
    assert next_step_target(r"C:\A B\python.exe") == r" --python <C:\A B\python.exe>"


# The target's shell: a plan made here from a Windows host's facts is pasted on that host.
@pytest.mark.parametrize(
    ("platform", "python", "expected"),
    [
        ("windows-x86_64", None, "nt"),
        ("linux-x86_64", r"C:\odd\but\linux", "posix"),  # the platform key decides
        (None, r"C:\Users\me\.venv\Scripts\python.exe", "nt"),
        (None, r"\\server\share\python.exe", "nt"),
        (None, "/home/a/.venv/bin/python", None),
        (None, None, None),
    ],
)
def test_target_os_name(platform: str | None, python: str | None, expected: str | None) -> None:
    assert shellquote.target_os_name(platform, python) == expected


ARGVS = [
    ("env", "PIP_CONFIG_FILE=nul", r"C:\Users\A B\.venv\Scripts\python.exe", "-m", "pip",
     "install", "--isolated", "--index-url", "https://download.pytorch.org/whl/cu124",
     "torch==2.5.1+cu124"),
    ("env", "-u", "UV_INDEX", "-u", "UV_EXTRA_INDEX_URL", "uv", "pip", "install", "--python",
     r"C:\it's\python.exe", "transformers>=4.30.0", "-c", "qfix-constraints.txt"),
    ("python", "-m", "pip", "install", "bitsandbytes==0.50.2", "x;y", "$HOME", "a,b", "@f"),
]  # fmt: skip


def _powershell_words(line: str) -> list[str]:
    """PowerShell's reading of the call we print (about_Quoting_Rules): words separated by
    spaces, each either bare (no operator character) or single-quoted with '' for a quote."""
    words, i = [], 0
    while i < len(line):
        if line[i] == " ":
            i += 1
        elif line[i] == "'":
            j, word = i + 1, ""
            while True:
                k = line.index("'", j)
                word += line[j:k]
                if line[k + 1 : k + 2] == "'":
                    word, j = word + "'", k + 2
                else:
                    i = k + 1
                    break
            words.append(word)
        else:
            k = line.find(" ", i)
            k = len(line) if k < 0 else k
            bare = line[i:k]
            assert not set(bare) & set("<>|&;,(){}@$#`'\""), bare
            words.append(bare)
            i = k
    return words


@pytest.mark.parametrize("argv", ARGVS)
def test_posix_command_lines_are_the_argv(argv: tuple[str, ...]) -> None:
    assert shlex.split(shellquote.command_line(argv, os_name="posix")) == list(argv)


@pytest.mark.parametrize("argv", ARGVS)
def test_windows_command_lines_are_powershell(argv: tuple[str, ...]) -> None:
    line = shellquote.command_line(argv, os_name="nt")
    assert "env " not in line  # Windows has no env(1)
    statements = line.split("; ")
    call = next(s for s in statements if s.startswith("& "))
    command = [a for a in argv if a != "env"]
    while command[0] == "-u" or "=" in command[0] and command[0].split("=")[0].isupper():
        command = command[2:] if command[0] == "-u" else command[1:]
    assert _powershell_words(call[2:]) == command
    before = statements[: statements.index(call)]
    after = statements[statements.index(call) + 1 :]
    if "PIP_CONFIG_FILE=nul" in argv:  # saved, set for the command, put back after it
        assert before == [
            "$qfix_PIP_CONFIG_FILE = $env:PIP_CONFIG_FILE",
            "$env:PIP_CONFIG_FILE = 'nul'",
        ]
        assert after == ["$env:PIP_CONFIG_FILE = $qfix_PIP_CONFIG_FILE"]
    if "-u" in argv:  # saved, removed before the command, put back after it
        assert before == [
            "$qfix_UV_INDEX = $env:UV_INDEX",
            "$qfix_UV_EXTRA_INDEX_URL = $env:UV_EXTRA_INDEX_URL",
            "Remove-Item Env:UV_INDEX, Env:UV_EXTRA_INDEX_URL -ErrorAction Ignore",
        ]
        assert after == [
            "$env:UV_INDEX = $qfix_UV_INDEX",
            "$env:UV_EXTRA_INDEX_URL = $qfix_UV_EXTRA_INDEX_URL",
        ]
    if argv[0] != "env":
        assert before == [] and after == []
