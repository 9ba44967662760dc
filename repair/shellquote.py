"""Quoting of the commands qfix prints for a person to paste (next steps, tips, previews).

POSIX shells get ``shlex.quote`` (single quotes). Windows shells do not read single quotes:
cmd.exe keeps them as part of the word, so ``'C:\\Users\\A B\\.venv\\Scripts\\python.exe'``
would name no file. Double quotes are read by both cmd.exe and PowerShell
(https://learn.microsoft.com/en-us/cpp/c-language/parsing-c-command-line-arguments), and a
Windows path cannot contain ``"`` itself, so a word with a space or a shell metacharacter is
wrapped in double quotes there. The shell is the one of the machine qfix runs on: a printed
command is pasted where it was printed.
"""

from __future__ import annotations

import os
import re
import shlex

# cmd.exe's and PowerShell's metacharacters, and whitespace: a word with none is printed bare
_WINDOWS_SPECIAL = re.compile(r"[\s\"&|<>^%(),;=!'`$@{}]")


def quote(arg: str, *, os_name: str = os.name) -> str:
    """``arg`` as one word of a command line a person pastes into this machine's shell."""
    if os_name != "nt":
        return shlex.quote(arg)
    if arg and not _WINDOWS_SPECIAL.search(arg):
        return arg
    return '"' + arg.replace('"', '\\"') + '"'
