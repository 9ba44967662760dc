"""Record what a person sees at a terminal: plan -> apply -> verify (docs/terminal-session.md).

The session runs on a private copy of the test venv ``torch213-bnb038`` (torch 2.13.0 CPU and
bitsandbytes 0.38.1, no transformers: the setup of issue 11), each command on a real
pseudo-terminal (python's ``pty``). torch's index is the local test index on loopback
(tests/index_server.py); bitsandbytes comes from this machine's own pip configuration, the way a
user's mirror would serve it. The answer to apply's prompt is typed as a person would.

The page shows the final screen of each command (a status line that was redrawn in place shows
as its last state, the way the terminal left it) and, under it, each distinct status the live line
showed while the command ran, with the second it first appeared.

    python tools/record_session.py [--out docs/terminal-session.md]
"""

from __future__ import annotations

import argparse
import os
import pty
import re
import select
import shlex
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.index_server import IndexServer  # noqa: E402
from tests.venvs import copy_venv, get_venv  # noqa: E402

QFIX = [sys.executable, "-m", "repair"]
_STATUS = re.compile(r"\r\x1b\[K")


def in_pty(argv: list[str], env: dict[str, str], answer: bytes | None) -> tuple[list, int]:
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(REPO)
        os.execve(argv[0], argv, env)
    chunks: list[tuple[float, bytes]] = []
    t0, seen = time.monotonic(), b""
    while True:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append((time.monotonic() - t0, data))
        seen += data
        if answer is not None and b"[y/N]" in seen:
            time.sleep(0.5)  # a person reads the plan first
            os.write(fd, answer)
            answer = None
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return chunks, os.waitstatus_to_exitcode(status)


def final_screen(chunks: list[tuple[float, bytes]]) -> str:
    """The text as the terminal shows it at the end: a line erased by '\\r ESC[K' is gone."""
    text = b"".join(d for _, d in chunks).decode("utf-8", errors="replace").replace("\r\n", "\n")
    lines: list[str] = [""]
    for piece in re.split(r"(\r\x1b\[K|\n)", text):
        if piece == "\n":
            lines.append("")
        elif piece == "\r\x1b[K":
            lines[-1] = ""
        else:
            lines[-1] += piece
    return "\n".join(lines).rstrip() + "\n"


def statuses(chunks: list[tuple[float, bytes]]) -> list[tuple[float, str]]:
    """Each distinct status the live line showed (its seconds counter aside), first seen when."""
    out: list[tuple[float, str]] = []
    seen: set[str] = set()
    for t, data in chunks:
        for piece in _STATUS.split(data.decode("utf-8", errors="replace"))[1:]:
            line = piece.split("\r\n")[0].strip()
            key = re.sub(r"\(\d+ s\)$", "", line).strip()
            if key.startswith("...") and key not in seen:
                seen.add(key)
                out.append((t, line))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "docs" / "terminal-session.md"))
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "QFIX_TORCH_INDEX")}
    env.setdefault("COLUMNS", "100")
    with tempfile.TemporaryDirectory(prefix="qfix-session-") as tmp:
        venv = copy_venv(get_venv("torch213-bnb038"), Path(tmp) / "project" / ".venv")
        with IndexServer(Path(tmp) / "index") as index:
            shown_python = "project/.venv/bin/python"
            runs = [
                (["plan", "--python", str(venv.python)], None),
                (
                    ["apply", "--python", str(venv.python), "--torch-index", index.torch_base],
                    b"y\n",
                ),
                (["verify", "--python", str(venv.python)], None),
            ]
            page = [
                "# A terminal session: plan -> apply -> verify",
                "",
                "Recorded for real by `python tools/record_session.py` on a CPU-only Linux host: a",
                "venv with torch 2.13.0 (CPU) and bitsandbytes 0.38.1 (no 4-bit) and no",
                "transformers, each command on a real pseudo-terminal, the prompt answered `y`.",
                "torch's index is the local test index on loopback; bitsandbytes 0.50.2 comes",
                "from the machine's pip configuration. Paths are shortened to `project/.venv`.",
                "",
            ]
            for cmd, answer in runs:
                chunks, rc = in_pty([*QFIX, *cmd], env, answer)
                screen = final_screen(chunks).replace(str(venv.python), shown_python)
                screen = screen.replace(str(venv.path), "project/.venv")
                screen = screen.replace(index.torch_base, "http://127.0.0.1:PORT/whl")
                shown_cmd = " ".join(shlex.quote(c) for c in ["qfix", *cmd])
                shown_cmd = shown_cmd.replace(str(venv.python), shown_python)
                shown_cmd = shown_cmd.replace(index.torch_base, "http://127.0.0.1:PORT/whl")
                page += ["```console", f"$ {shown_cmd}", screen.rstrip(), f"$ echo $?\n{rc}", "```"]
                live = statuses(chunks)
                if live:
                    page.append("")
                    page.append("The live status line meanwhile (second first shown: text):")
                    page.append("")
                    page.append("```text")
                    for t, line in live:
                        line = line.replace(str(venv.python), shown_python)
                        page.append(f"{t:6.1f} s  {line}")
                    page.append("```")
                page.append("")
    Path(args.out).write_text("\n".join(page), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
