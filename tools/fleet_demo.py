"""Write a demo fleet (qfix.node/1 records from shipped examples, node-local noise added) and its
HTML report: the source of docs/fleet-report.png.

    python tools/fleet_demo.py OUT_DIR
    chromium --headless --no-sandbox --window-size=1100,1400 \
        --screenshot=docs/fleet-report.png OUT_DIR/report.html
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from repair.fleet.grouping import default_plan_fn  # noqa: E402
from repair.fleet.records import make_record, read_records  # noqa: E402
from repair.fleet.report import build_report, render_html  # noqa: E402
from tests.fleet_support import example_facts, with_noise  # noqa: E402

# node -> (example facts, what happened after detect)
FLEET = {
    **{f"gpu{i:02d}": ("healthy", "verified") for i in range(1, 7)},
    **{f"gpu{i:02d}": ("bnb-0454", "repaired") for i in range(7, 11)},
    "gpu11": ("bnb-0454", "rolled-back"),
    **{f"gpu{i:02d}": ("cuda-init-failed", "verify-failed") for i in (12, 13)},
    "gpu14": ("rocm", "verify-failed"),
    "gpu15": ("healthy", None),
}


def main(out: Path) -> None:
    rec_dir = out / "records"
    rec_dir.mkdir(parents=True, exist_ok=True)
    examples = dict(example_facts())
    rng = random.Random(5)
    t = "2026-12-06T01:00:00Z"
    later = "2026-12-06T01:05:00Z"
    for n, (node, (example, after)) in enumerate(FLEET.items()):
        recs = [make_record(node, "detect", with_noise(examples[example], rng, n), 0, t, 1.4)]
        steps = {"plan": {"steps": [{"package": "bitsandbytes"}]}}
        if after == "verified":
            recs.append(make_record(node, "verify", {"ok": True}, 0, later, 21.0))
        elif after == "repaired":
            recs.append(make_record(node, "apply", {**steps, "outcome": {"ok": True}}, 0, t, 31))
            recs.append(make_record(node, "verify", {"ok": True}, 0, later, 20.5))
        elif after == "rolled-back":
            outcome = {"error": "could not install bitsandbytes==0.50.2: HTTP 503"}
            recs.append(make_record(node, "apply", {**steps, "outcome": outcome}, 3, t, 12))
        elif after == "verify-failed":
            recs.append(make_record(node, "verify", {"ok": False}, 1, later, 9.0))
        for r in recs:
            (rec_dir / f"{node}.{r['kind']}.json").write_text(json.dumps(r))
    groups, states = build_report(read_records([rec_dir]), default_plan_fn())
    (out / "report.html").write_text(render_html(groups, states, "qfix fleet report: demo"))
    print(out / "report.html")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
