"""Scores qfix on a directory of real-report cases (the format of tests/data/cases/H01.json).

    python tools/score_cases.py tests/data/cases tests/data/cases4 tests/data/cases5 [more ...]

Each case goes through exactly the check of tests/test_cases.py::test_case
(tests.core_helpers.case_failure: the pure core, no process, no network). One line per case:
PASS, FAIL with the first expectation qfix misses, or ERROR when the case cannot be read;
then the score. Exit 0 when every case passes, 1 otherwise, 2 on bad usage.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere: import tests/ and repair/
    sys.path.insert(0, str(ROOT))

from repair.facts import FactsError  # noqa: E402
from tests.core_helpers import case_failure  # noqa: E402


def case_files(args: list[str]) -> list[Path]:
    files: list[Path] = []
    for arg in args:
        path = Path(arg)
        if path.is_dir():
            files.extend(sorted(path.glob("*.json")))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(arg)
    return files


def score(files: list[Path]) -> tuple[int, list[str]]:
    """The number of passing cases and one report line per case."""
    passed, lines = 0, []
    for path in files:
        try:
            doc = json.loads(path.read_text())
            failure = case_failure(doc, path.name)
        except (OSError, ValueError, KeyError, FactsError) as exc:
            lines.append(f"ERROR {path.name}: {type(exc).__name__}: {exc}")
            continue
        if failure is None:
            passed += 1
            lines.append(f"PASS  {path.name}")
        else:
            lines.append(f"FAIL  {path.name}: {failure}")
    return passed, lines


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    try:
        files = case_files(argv)
    except FileNotFoundError as exc:
        print(f"score_cases: error: no such file or directory: {exc}", file=sys.stderr)
        return 2
    if not files:
        print("score_cases: error: no *.json case found", file=sys.stderr)
        return 2
    passed, lines = score(files)
    print("\n".join(lines))
    print(f"score: {passed}/{len(files)} passed")
    return 0 if passed == len(files) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
