"""Quoting of the commands qfix prints for a person to paste (next steps, tips, previews).

POSIX shells get ``shlex.quote`` (single quotes). Windows shells do not read single quotes:
cmd.exe keeps them as part of the word, so ``'C:\\Users\\A B\\.venv\\Scripts\\python.exe'``
would name no file. Double quotes are read by both cmd.exe and PowerShell
(https://learn.microsoft.com/en-us/cpp/c-language/parsing-c-command-line-arguments), and a
Windows path cannot contain ``"`` itself, so a word with a space or a shell metacharacter is
wrapped in double quotes there; one with ``$`` or a backtick, which PowerShell expands inside
double quotes, is a PowerShell single-quoted literal. The shell is the one of the machine qfix
runs on: a printed command is pasted where it was printed.
"""

from __future__ import annotations

import os
import re
import shlex

# cmd.exe's and PowerShell's metacharacters, and whitespace: a word with none is printed bare
_WINDOWS_SPECIAL = re.compile(r"[\s\"&|<>^%(),;=!'`$@{}]")
_POWERSHELL_EXPANDS = re.compile(r"[$`]")


def quote(arg: str, *, os_name: str = os.name) -> str:
    """``arg`` as one word of a command line a person pastes into this machine's shell."""
    if os_name != "nt":
        return shlex.quote(arg)
    if arg and not _WINDOWS_SPECIAL.search(arg):
        return arg
    if _POWERSHELL_EXPANDS.search(arg):
        # PowerShell expands $name and `x inside double quotes (about_Quoting_Rules): a folder
        # such as C:\Users\a$b would lose its $b. Such a word is a PowerShell literal, the shell
        # of the other Windows lines qfix prints (command_line); cmd.exe has no form both read.
        return _powershell_literal(arg)
    return '"' + arg.replace('"', '\\"') + '"'


# PowerShell reads a bare word as text only without its operators and separators
# (about_Parsing: ``<>|&;,(){}@$#`'"`` and whitespace); a single-quoted string is literal, with
# ``''`` for a quote inside (about_Quoting_Rules).
_POWERSHELL_PLAIN = re.compile(r"^[A-Za-z0-9_.:/\\+=-]+\Z")
# The drive-letter or UNC start of a Windows path: a plan whose interpreter is one is pasted on
# Windows even when the facts do not name the system.
_WINDOWS_PATH = re.compile(r"^([A-Za-z]:[\\/]|\\\\)")


def target_os_name(platform: str | None, python: str | None) -> str | None:
    """The ``os.name`` of the machine a plan's commands are pasted on: "nt" for a Windows target
    (its platform key, else an interpreter path with a drive letter), "posix" for another known
    platform, None when nothing says (this machine's)."""
    if platform:
        return "nt" if platform.startswith("windows") else "posix"
    if python and _WINDOWS_PATH.match(python):
        return "nt"
    return None


def is_windows_shell(os_name: str | None) -> bool:
    """Whether a line for ``os_name``'s machine (None: this one's) is pasted on Windows."""
    return (os.name if os_name is None else os_name) == "nt"


def powershell_word(arg: str) -> str:
    """``arg`` as one PowerShell argument: bare when plain, else single-quoted (literal)."""
    return arg if _POWERSHELL_PLAIN.match(arg) else _powershell_literal(arg)


def _powershell_literal(text: str) -> str:
    """``text`` as a PowerShell single-quoted string: literal, ``''`` for a quote inside."""
    return "'" + text.replace("'", "''") + "'"


def command_line(argv: tuple[str, ...] | list[str], *, os_name: str | None = None) -> str:
    """A stored command (argv, environment changes as an ``env [-u NAME] [NAME=VALUE]`` prefix,
    the form ``Command.shown`` writes) as one line for the shell of ``os_name``'s machine.

    POSIX shells run the ``env`` form itself. Windows has no ``env``, and cmd.exe cannot set a
    variable for one command, so a Windows line is PowerShell (the default shell of Windows 10
    and 11): the variables are saved and set (or removed), the command is called with ``&`` (a
    quoted path is otherwise a string, not a command), and the saved values are put back.
    """
    if not is_windows_shell(os_name):
        return " ".join(quote(a, os_name="posix") for a in argv)
    words = list(argv)
    unset: list[str] = []
    assign: list[tuple[str, str]] = []
    if words and words[0] == "env":
        words.pop(0)
        while words:
            if words[0] == "-u" and len(words) > 1:
                unset.append(words[1])
                del words[:2]
            elif re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
                name, value = words.pop(0).split("=", 1)
                assign.append((name, value))
            else:
                break
    # Each variable the command changes is saved first and put back after it (assigning $null
    # removes a variable that was not set: about_Environment_Variables), so the session keeps
    # what the user had. The right side of an assignment is an expression: a bare word there
    # would be a command, so values are always literals.
    changed = [*(name for name, _ in assign), *unset]
    parts = [f"$qfix_{name} = $env:{name}" for name in changed]
    parts += [f"$env:{name} = {_powershell_literal(value)}" for name, value in assign]
    if unset:
        gone = ", ".join(f"Env:{name}" for name in unset)
        parts.append(f"Remove-Item {gone} -ErrorAction Ignore")
    parts.append("& " + " ".join(powershell_word(a) for a in words))
    parts += [f"$env:{name} = $qfix_{name}" for name in changed]
    return "; ".join(parts)
