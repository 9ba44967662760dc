"""Fuzzed facts and plans: every document ends in a result or one FactsError/PlanFileError line,
never a traceback (issue 16: 281 of 2,200 fuzzed facts documents crashed qfix before).

A seeded generator (reproducible without hypothesis' database) mutates the recorded examples of
plans/examples/ and the plans qfix makes from them: wrong types in every place (a list where a
mapping belongs, a mapping where a string belongs), huge and non-finite numbers (an integer
compute capability of 1e400, 5,000-digit integers), long strings, and nesting thousands deep.
Each document runs the whole pure path: parse, diagnose, plan, render as text and JSON.
A sample also goes through the real `qfix` command line in a child process.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from repair import pipeline
from repair.errors import ExitCode, QfixError
from repair.facts import facts_from_json
from repair.planfile import plan_from_doc
from repair.render import render_facts, render_plan

ROOT = Path(__file__).resolve().parent.parent
SEEDS = [json.loads(p.read_text()) for p in sorted((ROOT / "plans/examples").glob("*.json"))]
N_FACTS = 2000
N_PLANS = 600


def _deep(rng: random.Random) -> Any:
    value: Any = rng.choice([[], {}, "x"])
    for _ in range(rng.randrange(50, 1500)):
        value = [value] if rng.random() < 0.5 else {"a": value}
    return value


def _value(rng: random.Random, depth: int = 0) -> Any:
    k = rng.randrange(12)
    if k == 0:
        return None
    if k == 1:
        return rng.choice([True, False])
    if k == 2:
        return rng.choice([0, -1, 1, 7, 86, 2**70, -(2**70), 10**400, 10**4000])
    if k == 3:
        return rng.choice([0.5, 8.6, -3.2, 1e308, 1e-300, 12.9, 1e400])  # 1e400: inf
    if k == 4:
        return rng.choice(
            ["", "x", "8.6", "sm_90", "12.4", "2.5.1+cu121", "535.54", "a" * 20000, "\n\x00",
             "1e400", "..", "9" * 60, "cu" + "1" * 40, "99999999999.0", "-1.-1"]
        )  # fmt: skip
    if k == 5:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))] if depth < 4 else []
    if k == 6:
        key = rng.choice(["a", "version", "cuda", "0", "torch", "compute_capability"])
        return {key: _value(rng, depth + 1)} if depth < 4 else {}
    if k == 7:
        return _deep(rng)
    if k == 8:
        return {}
    if k == 9:
        return []
    return rng.choice(["12.1", "2.1.0", "0.39.0", "7.5", "11.8", "0.43.1"])


def _mutate(rng: random.Random, doc: Any) -> Any:
    if isinstance(doc, dict):
        out = dict(doc)
        for key in list(out):
            r = rng.random()
            if r < 0.15:
                out[key] = _value(rng)
            elif r < 0.2:
                del out[key]
            elif r < 0.6:
                out[key] = _mutate(rng, out[key])
        if rng.random() < 0.1:
            out[rng.choice(["extra", "gpus", "driver", "steps"])] = _value(rng)
        return out
    if isinstance(doc, list):
        return [_mutate(rng, x) if rng.random() < 0.7 else _value(rng) for x in doc]
    return doc if rng.random() < 0.6 else _value(rng)


def _text(rng: random.Random, doc: Any) -> str:
    """The document as JSON text, sometimes damaged at the text level as well."""
    try:
        text = json.dumps(doc)
    except (ValueError, RecursionError):  # 10**4000 or too deep for the encoder: build by hand
        text = '{"schema": "qfix.facts/1", "gpus": [{"compute_capability": ' + "9" * 5000 + "}]}"
    r = rng.random()
    if r < 0.05:
        text = text.replace("8.6", "1e400").replace('"7.5"', "1e400").replace("0.39", "1e999")
    elif r < 0.08:
        n = rng.randrange(1000, 200000)
        text = text[:-1] + ', "deep": ' + "[" * n + "]" * n + "}"
    elif r < 0.1:
        text = text[: rng.randrange(len(text) + 1)]  # truncated
    return text


def _documents(kind: str, n: int, seeds: list[Any]) -> list[tuple[int, str]]:
    rng = random.Random(f"qfix-fuzz-{kind}")
    return [(i, _text(rng, _mutate(rng, rng.choice(seeds)))) for i in range(n)]


def _plan_seeds() -> list[Any]:
    out = []
    for seed in SEEDS:
        facts = facts_from_json(json.dumps(seed))
        out.append(json.loads(render_plan(pipeline.analyse(facts).plan, as_json=True)))
    return [p for p in out if p.get("steps")] or out


def test_fuzzed_facts_never_crash() -> None:
    crashes: list[str] = []
    outcomes = {"read": 0, "refused": 0}
    docs = _documents("facts", N_FACTS, SEEDS)
    assert len(docs) >= 2000
    for i, text in docs:
        try:
            facts = facts_from_json(text, f"doc{i}")
            render_facts(facts)
            render_facts(facts, as_json=True)
            plan = pipeline.analyse(facts).plan
            render_plan(plan)
            render_plan(plan, as_json=True)
            outcomes["read"] += 1
        except QfixError as exc:
            assert exc.exit_code == ExitCode.BAD_INPUT and "\n" not in exc.message
            outcomes["refused"] += 1
        except Exception as exc:  # what the issue counted: a traceback
            crashes.append(f"doc{i}: {type(exc).__name__}: {str(exc)[:120]}")
    assert not crashes, f"{len(crashes)} of {len(docs)} crashed: {crashes[:5]}"
    # the generator exercises both sides, or the test proves nothing
    assert outcomes["read"] > 200 and outcomes["refused"] > 200, outcomes


def test_fuzzed_plans_never_crash() -> None:
    crashes: list[str] = []
    refused = 0
    for i, text in _documents("plans", N_PLANS, _plan_seeds()):
        try:
            try:
                data = json.loads(text)
            except (ValueError, RecursionError):
                continue  # load_plan's JSON errors: pinned in test_fuzz_cli below
            render_plan(plan_from_doc(data, f"plan{i}"), as_json=True)
        except QfixError as exc:
            assert "\n" not in exc.message
            refused += 1
        except Exception as exc:
            crashes.append(f"plan{i}: {type(exc).__name__}: {str(exc)[:120]}")
    assert not crashes, f"{len(crashes)} crashed: {crashes[:5]}"
    assert refused > 100


@pytest.mark.parametrize(
    "text",
    [
        '{"schema": "qfix.facts/1", "gpus": [{"compute_capability": 1e400}]}',
        '{"schema": "qfix.facts/1", "gpus": [{"compute_capability": ' + "9" * 400 + "}]}",
        '{"schema": "qfix.facts/1", "gpus": [{"memory_mib": ' + "9" * 5000 + "}]}",
        '{"schema": "qfix.facts/1", "deep": ' + "[" * 100000 + "]" * 100000 + "}",
        '{"schema": "qfix.facts/1", "packages": [["torch", "2.1.0"]]}',
        '{"schema": "qfix.facts/1", "driver": []}',
    ],
    ids=["cc-1e400", "cc-huge-int", "5000-digits", "nested-100000", "list-for-map", "driver-list"],
)
def test_fuzz_cli(tmp_path: Path, text: str) -> None:
    """The real command line: exit 2 and one `qfix: error:` line, for facts and for plans."""
    facts = tmp_path / "facts.json"
    facts.write_text(text)
    for argv in (["plan", "--facts", str(facts)], ["apply", "--plan", str(facts), "--yes"]):
        done = subprocess.run(
            [sys.executable, "-m", "repair", *argv],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert "Traceback" not in done.stderr, done.stderr[-2000:]
        assert done.returncode == ExitCode.BAD_INPUT, (argv, done.returncode, done.stderr[-500:])
        assert said(done.stderr).startswith("qfix: error: "), done.stderr[:300]


def said(stderr: str) -> str:
    """stderr without the line naming the target (every command prints it first, issue 10)."""
    return "\n".join(x for x in stderr.splitlines() if not x.startswith("qfix: target:")) + "\n"
