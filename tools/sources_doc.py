"""Write docs/sources.md from plans/sources.toml (the shipped table of citation keys).

    python tools/sources_doc.py          # rewrite docs/sources.md
    python tools/sources_doc.py --check  # exit 1 when docs/sources.md is not current

tests/test_knowledge.py runs the check, so the page never drifts from the table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from repair.knowledge import Sources, load_sources  # noqa: E402

DOC = ROOT / "docs" / "sources.md"
TITLES = {
    "section": "Section keys (compat-facts.md)",
    "source": "Sources (S1..S29)",
    "case": "Failure cases (failure-cases.md)",
}


def render(sources: Sources) -> str:
    """docs/sources.md as text."""
    out = [
        "# Sources and citation keys",
        "",
        "Generated from `plans/sources.toml` by `python tools/sources_doc.py`; do not edit by",
        "hand. Comments, `plans/*.toml` and `qfix explain` cite these keys; `qfix explain` prints",
        "the text of each key a failure class cites.",
        "",
    ]
    for kind, title in TITLES.items():
        out += [f"## {title}", ""]
        out += [f"- **{r.key}**: {r.text}" for r in sources.references if r.kind == kind]
        out.append("")
    out += [
        "## Issue references",
        "",
        "`owner/name#N` is issue or pull request N of that GitHub repository. Short names:",
        "",
    ]
    out += [f"- `{short}#N`: {repo}" for short, repo in sources.repositories.items()]
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the page is current")
    args = parser.parse_args()
    text = render(load_sources())
    if args.check:
        if not DOC.is_file() or DOC.read_text(encoding="utf-8") != text:
            print(
                "docs/sources.md is not current: run python tools/sources_doc.py", file=sys.stderr
            )
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
