"""``qfix fleet``: plan, run and report across many nodes (a typer sub-app of the qfix CLI).

Thin: parse, call repair.fleet, render, exit. Records are ``qfix.node/1`` files written by
``qfix detect|plan|apply|verify --record DIR`` on each node (or by ``qfix fleet run``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import BadInput, ExitCode

fleet_app = typer.Typer(
    help="Many nodes at once: group nodes by the facts that decide the plan, plan once per group, "
    "launch qfix through Slurm (or Ansible, Ray) and report the whole run.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

RecordsArg = Annotated[
    list[str],
    typer.Argument(help="Record files (qfix.node/1, JSON or JSON Lines) or directories of them."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
TorchIndexOpt = Annotated[
    str | None,
    typer.Option(
        "--torch-index",
        help="Base of the PyTorch wheel index (as for qfix plan).",
        show_default=False,
    ),
]


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def to_json(doc: object) -> str:
    """repair.render.to_json, imported when output is due: render pulls in the knowledge base's
    modules, which `fleet plan` imports while its workers read (repair.fleet.parallel)."""
    from ..render import to_json as render_json

    return render_json(doc)


@fleet_app.command("plan")
def plan_cmd(
    records: RecordsArg, as_json: JsonOpt = False, torch_index: TorchIndexOpt = None
) -> int:
    """Group the nodes of detect records and plan once per group (qfix.fleet-plan/1 with --json).
    Exit 0 when every node is healthy, 1 otherwise."""
    from ..settings import torch_index_base
    from .grouping import default_plan_fn, fleet_plan_to_dict, render_fleet_plan
    from .parallel import plan_paths

    # The index base as `qfix plan` resolves it (--torch-index, else $QFIX_TORCH_INDEX).
    index = torch_index_base(torch_index, os.environ)
    groups = plan_paths(records, default_plan_fn(index))  # on all CPUs for a large fleet
    if not groups:
        raise BadInput("no detect records found in " + " ".join(records))
    if as_json:
        _out(to_json(fleet_plan_to_dict(groups)))
    else:
        _out(render_fleet_plan(groups))
    return ExitCode.OK if all(g.cls == "healthy" for g in groups) else ExitCode.PROBLEMS


@fleet_app.command("report")
def report_cmd(
    records: RecordsArg,
    as_json: JsonOpt = False,
    html_file: Annotated[
        Path | None,
        typer.Option(
            "--html", help="Also write a self-contained HTML page to this file.", show_default=False
        ),
    ] = None,
    torch_index: TorchIndexOpt = None,
) -> int:
    """Summarise a run: healthy, repaired and verified, failed (rolled back), need a driver, did
    not answer. Exit 0 when every node is healthy or repaired, 1 otherwise."""
    from .grouping import default_plan_fn
    from .records import read_records
    from .report import build_report, render_html, render_report, report_to_dict

    recs = read_records(records)
    if not recs:
        raise BadInput("no records found in " + " ".join(records))
    groups, states = build_report(recs, default_plan_fn(torch_index))
    if html_file is not None:
        try:
            html_file.write_text(render_html(groups, states), encoding="utf-8")
        except OSError as exc:
            raise BadInput(f"could not write {html_file}: {exc.strerror}") from None
    if as_json:
        _out(to_json(report_to_dict(groups, states)))
    else:
        _out(render_report(groups, states))
    ok = all(s.state in ("healthy", "repaired") for s in states)
    return ExitCode.OK if ok else ExitCode.PROBLEMS


@fleet_app.command(
    "run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def run_cmd(
    ctx: typer.Context,
    via: Annotated[str, typer.Option("--via", help="slurm | ray")] = "slurm",
    out: Annotated[
        Path, typer.Option("--out", help="Directory for records and per-task output.")
    ] = Path("qfix-records"),
    python: Annotated[
        str | None,
        typer.Option(
            "--python",
            help="The target interpreter on every node (as for qfix "
            "detect); default: the one qfix finds there.",
            show_default=False,
        ),
    ] = None,
    qfix_python: Annotated[
        str, typer.Option("--qfix-python", help="The interpreter that runs qfix on the nodes.")
    ] = sys.executable,
    nodes: Annotated[int, typer.Option("--nodes", "-N", help="How many nodes.")] = 1,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds for the whole run.")] = 600,
    command: Annotated[
        str, typer.Option("--command", help="detect | plan | verify | apply")
    ] = "detect",
    expect_plan: Annotated[
        str | None, typer.Option("--expect-plan", help="For --command apply.", show_default=False)
    ] = None,
    as_json: JsonOpt = False,
) -> int:
    """Run one qfix command on N nodes and collect their records; extra arguments after `--`
    go to srun (e.g. `-- -w gpu[01-04] -p gpu`). srun's exit code is not trusted: each node's
    status is read from its own record."""
    from .engines.base import node_command

    if nodes < 1:
        raise BadInput("--nodes must be at least 1")
    qfix_args = node_command(qfix_python, command, out, python=python, expect_plan=expect_plan)
    if via == "slurm":
        from .engines.slurm import run_srun

        result = run_srun(
            qfix_args, out=out, nodes=nodes, timeout=timeout, srun_args=list(ctx.args)
        )
    elif via == "ray":
        from .engines.ray import run_ray

        result = run_ray(qfix_args, out=out, timeout=timeout)
    else:
        raise BadInput(f"--via must be slurm or ray, not {via!r}")
    if as_json:
        _out(to_json(result.to_dict()))
    else:
        _out(result.summary())
    return ExitCode.OK if result.all_answered else ExitCode.PROBLEMS


@fleet_app.command("playbook")
def playbook_cmd() -> int:
    """Print the path of the Ansible playbook shipped with qfix (for ansible-playbook)."""
    _out(str(Path(__file__).resolve().parent / "ansible" / "qfix.yml"))
    return ExitCode.OK
