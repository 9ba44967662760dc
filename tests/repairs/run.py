"""Run one repair scenario end to end through the qfix command line, as a user would.

    python tests/repairs/run.py SCENARIO [--qfix PATH] [--work DIR] [--keep]

Called by `nox -s "repairs(<id>)"` and `nox -s repairs-heavy` (see docs/repairs.md) with the
qfix *installed* in the session's venv: every qfix call is a child process of its console script,
run outside the checkout, so what is proven is the installed product. The phases:

1. host: a GPU host is simulated by the fake libnvidia-ml.so.1 (tests/fakes/) on LD_LIBRARY_PATH
   with its config in FAKE_NVML_CONFIG; otherwise this machine's own (absent) driver answers;
2. the broken venv: `uv venv --seed` + `uv pip install` from the shared cache (.cache/repairs/uv):
   the real torch 2.13.0 CPU wheel, generated torch builds from the local PyTorch-style index
   (tests/index_server.py), real bitsandbytes from the default index;
3. `qfix detect --json` must report the scenario's own facts (scenarios.Scenario.facts), so the
   fast table test (tests/test_repairs_scenarios.py) plans for what the real probe sees;
4. `qfix verify --json` before (real torch only): the breakage is real, not just qfix's opinion;
5. `qfix plan --json`: exactly the expected finding ids, diff and required manual steps;
6. `qfix apply --yes --json`: the outcome, and the versions it reports before and after;
7. after: `qfix verify --json` passes on the CPU backend (real torch), or, for a generated
   torch that cannot be imported, the installed build is read from its files
   (torch/version.py); `qfix plan` exits 0 (healthy; warnings allowed).

Exit status 0 when every check passed; 1 with the failed check named; 2 for bad usage. A JSON
summary with the time of each phase goes to .cache/repairs/results/<id>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # tests.* helpers; qfix itself runs only as a child process

from tests.fakes import nvml as fake_nvml  # noqa: E402
from tests.index_server import REAL_TORCH_WHEEL, IndexServer, build_wheel  # noqa: E402
from tests.repairs import scenarios as sc  # noqa: E402

CACHE = REPO / ".cache" / "repairs"
# Variables of the caller's shell that would change what qfix sees; each scenario sets its own.
SCRUB = (
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "PYTHONHOME",
    "BNB_CUDA_VERSION",
    "CUDA_VISIBLE_DEVICES",
    "CUDA_HOME",
    "LD_LIBRARY_PATH",
    "LD_PRELOAD",
    "FAKE_NVML_CONFIG",
    "QFIX_TORCH_INDEX",
    "QFIX_TEST_KILL_AT",
    "QFIX_PROBE_TIMEOUT",
    "PIP_REQUIRE_VIRTUALENV",
)
BNB = "bitsandbytes"
HEAVY_MIN_FREE_GB = 14  # venv ~5.5 GB + relabeled wheel 1.1 GB + pip's unpacking room


class Failed(Exception):
    """A check of the scenario failed (one line, plus details)."""


class Runner:
    def __init__(self, scenario: sc.Scenario, qfix: Path, work: Path) -> None:
        self.s = scenario
        self.qfix = qfix
        self.work = work
        self.venv = work / "venv"
        self.python = self.venv / "bin" / "python"
        self.timings: dict[str, float] = {}
        self.checks: list[str] = []
        self.index: IndexServer | None = None
        self.base_env = {k: v for k, v in os.environ.items() if k not in SCRUB}
        self.base_env.update(
            PIP_CACHE_DIR=str(CACHE / "pip"),
            UV_CACHE_DIR=str(CACHE / "uv"),
            PIP_DISABLE_PIP_VERSION_CHECK="1",
        )

    # ------------------------------------------------------------------ helpers

    def say(self, line: str) -> None:
        print(f"[{self.s.id}] {line}", flush=True)

    def check(self, cond: bool, what: str, detail: Any = None) -> None:
        if not cond:
            extra = "" if detail is None else f"\n  got: {json.dumps(detail, default=str)[:4000]}"
            raise Failed(f"{what}{extra}")
        self.checks.append(what)
        self.say(f"ok   {what}")

    def phase(self, name: str) -> _Phase:
        return _Phase(self, name)

    def env(self, *, after: bool = False, **extra: str) -> dict[str, str]:
        env = dict(self.base_env)
        if self.s.host is not None:
            env["LD_LIBRARY_PATH"] = str(self.nvml_dir)
            env["FAKE_NVML_CONFIG"] = str(self.nvml_config)
        if self.index is not None:
            env["QFIX_TORCH_INDEX"] = self.index.torch_base
        env.update(self.s.env_dict(after=after))
        env.update(extra)
        return env

    def run(
        self,
        argv: list[str],
        *,
        env: dict[str, str],
        timeout: float = 900,
        ok_codes: tuple[int, ...] = (0,),
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=self.work,
            check=False,
        )
        if done.returncode not in ok_codes:
            raise Failed(
                f"{' '.join(argv[:4])} ... exited {done.returncode} "
                f"(expected {ok_codes}):\n{done.stderr[-3000:]}\n{done.stdout[-2000:]}"
            )
        return done

    def qfix_json(
        self,
        *args: str,
        env: dict[str, str],
        timeout: float = 900,
        ok_codes: tuple[int, ...] = (0, 1, 10),
    ) -> tuple[int, dict[str, Any]]:
        done = self.run(
            [str(self.qfix), *args, "--json"], env=env, timeout=timeout, ok_codes=ok_codes
        )
        try:
            return done.returncode, json.loads(done.stdout)
        except json.JSONDecodeError:
            raise Failed(
                f"qfix {args[0]} --json printed no JSON:\n{done.stdout[-2000:]}\n"
                f"{done.stderr[-2000:]}"
            ) from None

    def uv(self) -> str:
        found = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
        if not Path(found).exists():
            raise Failed("uv is needed to build the scenario venvs (the nox session installs it)")
        return found

    # ------------------------------------------------------------------ phases

    def setup_host(self) -> None:
        host = self.s.host
        if host is None:
            return
        self.nvml_dir = fake_nvml.build()
        gpus = [
            fake_nvml.FakeGpu(g.name, *map(int, g.cc.split(".")), g.memory_mib) for g in host.gpus
        ]
        self.nvml_config = fake_nvml.FakeNvml(
            driver=host.driver, cuda=host.nvml_cuda, gpus=gpus
        ).write(self.work / "nvml.conf")
        self.say(
            f"host: fake NVML, driver {host.driver} (CUDA {host.cuda}), "
            + ", ".join(f"{g.name} (sm {g.cc})" for g in host.gpus)
        )

    def start_index(self, stack: ExitStack) -> None:
        if self.s.heavy:
            from tests.repairs import heavy

            torch_wheel = heavy.relabel(heavy.REAL_TORCH_2141, CACHE / "heavy" / "wheels")
            deps = heavy.mirror_dependencies(
                self.python, "torch==2.14.1", CACHE / "heavy" / "mirror", self.env()
            )
            self.index = stack.enter_context(
                heavy.HeavyIndex(self.work / "index", torch_wheel=torch_wheel, dependencies=deps)
            )
            self.say(
                f"index: {self.index.torch_base} (+ real torch 2.14.1+cu130, "
                f"{len(deps)} dependency wheels in cu130/)"
            )
        elif self.s.needs_index:
            self.index = stack.enter_context(IndexServer(self.work / "index"))
            self.say(f"index: {self.index.torch_base}")

    def build_venv(self) -> None:
        uv = self.uv()
        env = self.env()
        env.pop("LD_LIBRARY_PATH", None)
        self.run(
            [uv, "venv", "--quiet", "--seed", "--python", sys.executable, str(self.venv)],
            env=env,
            timeout=300,
        )
        pip = [uv, "pip", "install", "--quiet", "--python", str(self.python)]
        if self.s.torch == sc.REAL_TORCH and REAL_TORCH_WHEEL.is_file():
            torch_req = [str(REAL_TORCH_WHEEL)]
        else:
            if self.index is None:
                raise Failed(f"torch {self.s.torch} needs the local index")
            base = self.index.torch_base
            variant = self.s.torch.partition("+")[2]
            torch_req = ["--index", f"{base}/{variant}", f"torch=={self.s.torch}"]
        # torch first (its own index first, uv's default index for its dependencies), then
        # bitsandbytes with torch held by a constraint so no resolver swaps it.
        self.run([*pip, *torch_req], env=env)
        constraints = self.work / "constraints.txt"
        constraints.write_text(f"torch=={self.s.torch}\n")
        self.run([*pip, "-c", str(constraints), f"bitsandbytes=={self.s.bitsandbytes}"], env=env)
        if self.s.extras:
            self.run([*pip, "-c", str(constraints), *self.s.extras], env=env)
        for name, version in self.s.stray:
            self.run([*pip, "--no-deps", f"{name}=={version}"], env=env)
        for app in self.s.apps:
            module = app.name.replace("-", "_")
            wheel = build_wheel(
                self.work / "apps",
                app.name,
                app.version,
                requires=(app.requires,),
                files={f"{module}/__init__.py": f"__version__ = {app.version!r}\n"},
            )
            self.run([*pip, "--no-deps", str(wheel)], env=env)

    def cross_check_facts(self, facts: dict[str, Any], *, after: bool) -> None:
        """`qfix detect` must report the facts the table test plans for."""
        want = self.s.facts(after=after)
        label = "after" if after else "before"

        def pick(f: dict[str, Any]) -> dict[str, Any]:
            drv = f.get("driver") or {}
            return {
                "packages": {k: (f.get("packages") or {}).get(k) for k in ("torch", BNB)},
                "torch": {k: (f.get("torch") or {}).get(k) for k in ("version", "cuda")},
                "bitsandbytes": {
                    k: (f.get("bitsandbytes") or {}).get(k)
                    for k in ("version", "copies", "distributions")
                },
                "driver": {k: drv.get(k) for k in ("found", "version", "cuda")},
                "gpus": [(g.get("name"), g.get("compute_capability")) for g in f.get("gpus") or []],
                "BNB_CUDA_VERSION": (f.get("env") or {}).get("BNB_CUDA_VERSION"),
                "torch_dependents": f.get("torch_dependents") or {},
            }

        got, exp = pick(facts), pick(want)
        if got["bitsandbytes"]["distributions"]:
            got["bitsandbytes"]["distributions"] = sorted(got["bitsandbytes"]["distributions"])
        self.check(
            got == exp,
            f"detect ({label}): the facts are the scenario's facts",
            {"got": got, "expected": exp},
        )

    def verify(self, label: str, device: str, env: dict[str, str]) -> dict[str, Any]:
        rc, doc = self.qfix_json(
            "verify",
            "--python",
            str(self.python),
            "--device",
            device,
            "--model",
            "none",
            env=env,
            timeout=600,
        )
        failed = [f"{c['name']}: {c['error']}" for c in doc.get("checks", []) if not c["ok"]]
        self.say(
            f"     verify {label}: exit {rc}, failure ids {doc.get('failure_ids')}, "
            f"failed checks {failed}"
        )
        return {"rc": rc, **doc}

    def assert_plan(self, doc: dict[str, Any], rc: int) -> None:
        s = self.s
        ids = sorted(f["id"] for f in doc["findings"])
        self.check(ids == sorted(s.findings), f"plan: findings {sorted(s.findings)}", ids)
        got = [(st["action"], st["package"], st["from"], st["to"]) for st in doc["steps"]]
        self.check(
            got == [st.key() for st in s.steps],
            "plan: diff "
            + (
                "(no steps)"
                if not s.steps
                else ", ".join(f"{st.package} {st.frm} -> {st.to}" for st in s.steps)
            ),
            got,
        )
        for st, want in zip(doc["steps"], s.steps, strict=True):
            if want.variant is not None:
                assert self.index is not None
                self.check(
                    st["index_url"] == f"{self.index.torch_base}/{want.variant}",
                    f"plan: {st['package']} from the local index's {want.variant}/",
                    st["index_url"],
                )
        manual = sorted(m["id"] for m in doc["manual"] if m["required"])
        self.check(
            manual == sorted(s.manual_required),
            f"plan: required manual steps {sorted(s.manual_required)}",
            manual,
        )
        self.check(
            rc == (0 if s.healthy_before else 1) and doc["healthy"] is s.healthy_before,
            f"plan: exit {0 if s.healthy_before else 1}",
            rc,
        )

    def assert_apply(self, rc: int, doc: dict[str, Any]) -> None:
        s = self.s
        if not s.steps:
            want = 0 if s.healthy_before else 1
            self.check(
                rc == want and doc.get("outcome") is None,
                f"apply: nothing to apply, exit {want}",
                {"rc": rc, "doc": doc},
            )
            return
        out = doc["outcome"]
        self.check(
            rc == 0 and out["ok"] and out["exit_code"] == 0 and not out["rolled_back"],
            "apply: exit 0, applied, not rolled back",
            {"rc": rc, "error": out.get("error"), "outcome": out},
        )
        if s.installer != "auto":
            self.check(
                out["installer"] == s.installer,
                f"apply: installed with {s.installer}",
                out["installer"],
            )
        want_verified = True if s.apply_verify != "skip" else None
        self.check(
            out["verified"] is want_verified,
            f"apply: its own 4-bit verification {'passed' if want_verified else 'skipped'}",
            {"verified": out["verified"], "verify": doc.get("verify")},
        )
        for st in s.steps:
            if st.action == "install":
                self.check(
                    out["after"].get(st.package) == st.to,
                    f"apply: {st.package} is {st.to} afterwards",
                    out["after"],
                )
        for name, _ in s.stray:
            if any(st.package == name and st.action == "uninstall" for st in s.steps):
                self.check(name not in out["after"], f"apply: {name} is gone", out["after"])

    def site_packages(self) -> Path:
        return next((self.venv / "lib").glob("python3*/site-packages"))

    def read_torch_version_py(self) -> dict[str, Any]:
        """torch/version.py of the venv, read as a file (never imported)."""
        ns: dict[str, Any] = {}
        path = self.site_packages() / "torch" / "version.py"
        exec(compile(path.read_text(), str(path), "exec"), ns)  # a data file of two constants
        return {"__version__": ns.get("__version__"), "cuda": ns.get("cuda")}

    def heavy_checks(self, plan_doc: dict[str, Any]) -> None:
        """The installed CUDA build, from its files and a torch import on this GPU-less host."""
        env = dict(self.base_env)
        code = (
            "import json, torch; print(json.dumps({'version': torch.__version__, "
            "'cuda': torch.version.cuda, 'arch': torch._C._cuda_getArchFlags()}))"
        )
        done = self.run([str(self.python), "-c", code], env=env, timeout=300)
        info = json.loads(done.stdout.strip().splitlines()[-1])
        self.say(f"     torch in the venv: {info}")
        self.check(
            info["version"] == sc.HEAVY_TORCH and info["cuda"] == "13.0",
            "heavy: import torch -> 2.14.1+cu130, torch.version.cuda 13.0",
            info,
        )
        arch = sorted(t for t in info["arch"].split() if t.startswith("sm_"))
        planned = sorted(plan_doc["torch_target"]["arch_list"] or [])
        self.check(arch == planned, f"heavy: compiled arch list = the plan's {planned}", arch)
        self.check("sm_90" in arch, "heavy: the H100's sm_90 is compiled in (SASS)", arch)
        lib = self.site_packages() / "bitsandbytes" / "libbitsandbytes_cuda130.so"
        self.check(lib.is_file(), "heavy: bitsandbytes ships libbitsandbytes_cuda130.so", str(lib))
        # The library bitsandbytes will load on the H100 must resolve every shared library it
        # needs (cudart, cublas, cublasLt from the nvidia-* wheels torch brought); libcuda.so.1,
        # the driver's, is opened by cudart only when the first CUDA call runs.
        code = f"import ctypes, torch; ctypes.CDLL({str(lib)!r}); print('loaded')"
        done = self.run([str(self.python), "-c", code], env=env, timeout=300, ok_codes=(0, 1))
        self.check(
            done.returncode == 0 and "loaded" in done.stdout,
            "heavy: libbitsandbytes_cuda130.so loads (all its CUDA libraries resolve)",
            done.stderr[-1500:],
        )

    # ------------------------------------------------------------------ the scenario

    def main(self) -> None:
        s = self.s
        self.say(s.summary)
        with ExitStack() as stack:
            with self.phase("host"):
                self.setup_host()
            if s.heavy:
                with self.phase("venv"):
                    self.build_venv()
                with self.phase("index"):
                    self.start_index(stack)
            else:
                with self.phase("index"):
                    self.start_index(stack)
                with self.phase("venv"):
                    self.build_venv()
            env = self.env()
            with self.phase("detect"):
                _, facts = self.qfix_json(
                    "detect", "--python", str(self.python), env=env, ok_codes=(0,)
                )
                self.cross_check_facts(facts, after=False)
                before_dists = facts.get("distributions")
            if s.verify_before is not None:
                with self.phase("verify-before"):
                    # --device auto, as a user runs it: on a simulated GPU host it reports
                    # the GPU that the installed torch cannot use
                    device = "auto"
                    v = self.verify("before", device, env)
                    want = s.verify_before
                    self.check(
                        v["rc"] == want.exit_code,
                        f"verify --device {device} before: exit {want.exit_code}",
                        v["rc"],
                    )
                    failed = sorted(c["name"] for c in v["checks"] if not c["ok"])
                    self.check(
                        failed == sorted(want.failed_checks)
                        and sorted(v["failure_ids"]) == sorted(want.failure_ids),
                        f"verify before: failed checks {sorted(want.failed_checks)}, "
                        f"failure ids {sorted(want.failure_ids)}",
                        {"failed": failed, "failure_ids": v["failure_ids"]},
                    )
            with self.phase("plan"):
                rc, plan_doc = self.qfix_json("plan", "--python", str(self.python), env=env)
                self.assert_plan(plan_doc, rc)
            with self.phase("apply"):
                args = [
                    "apply",
                    "--python",
                    str(self.python),
                    "--yes",
                    "--verify",
                    s.apply_verify,
                    "--installer",
                    s.installer,
                ]
                extra = {"PIP_NO_CACHE_DIR": "1"} if s.heavy else {}
                rc, apply_doc = self.qfix_json(
                    *args, env=self.env(**extra), timeout=3600, ok_codes=(0, 1, 3, 4, 5, 6)
                )
                self.say(
                    f"     apply: exit {rc}, timings "
                    f"{(apply_doc.get('outcome') or {}).get('timings')}"
                )
                self.assert_apply(rc, apply_doc)
            after_env = self.env(after=True)
            with self.phase("detect-after"):
                _, facts_after = self.qfix_json(
                    "detect", "--python", str(self.python), env=after_env, ok_codes=(0,)
                )
                self.cross_check_facts(facts_after, after=True)
                if not s.steps:
                    self.check(
                        facts_after.get("distributions") == before_dists,
                        "the venv is unchanged (every distribution and version)",
                    )
            with self.phase("verify-after"):
                if s.real_torch_after:
                    v = self.verify("after", s.verify_device, after_env)
                    self.check(
                        v["rc"] == 10 and v["ok"] and not v["failure_ids"],
                        f"verify --device {s.verify_device} after: exit 10 (the 4-bit "
                        "load passed on the CPU backend), no failure",
                        {k: v.get(k) for k in ("rc", "failure_ids", "summary")},
                    )
                    names = {c["name"] for c in v["checks"] if c["ok"]}
                    self.check(
                        {"linear-nf4@cpu", "linear-fp4@cpu"} <= names,
                        "verify after: NF4 and FP4 layers passed on the CPU",
                        sorted(names),
                    )
                else:
                    vp = self.read_torch_version_py()
                    want_cuda = sc._cuda_of(s.torch_after.partition("+")[2])
                    self.check(
                        vp == {"__version__": s.torch_after, "cuda": want_cuda},
                        f"torch/version.py after: {s.torch_after}, cuda {want_cuda} "
                        "(a generated build: read, not imported)",
                        vp,
                    )
                    if want_cuda is not None:
                        tag = want_cuda.replace(".", "")
                        lib = (
                            self.site_packages()
                            / "bitsandbytes"
                            / (f"libbitsandbytes_cuda{tag}.so")
                        )
                        self.check(
                            lib.is_file(),
                            f"bitsandbytes {s.bitsandbytes_after} ships "
                            f"{lib.name} for torch's CUDA {want_cuda}",
                            str(lib),
                        )
                if s.heavy:
                    self.heavy_checks(plan_doc)
            with self.phase("plan-after"):
                rc, doc = self.qfix_json("plan", "--python", str(self.python), env=after_env)
                errors = [f["id"] for f in doc["findings"] if f["severity"] == "error"]
                self.check(
                    rc == 0 and doc["healthy"] and not doc["steps"] and not errors,
                    "plan after: exit 0, healthy, no step, no error finding"
                    + (
                        f" (once the user unset {', '.join(s.user_unsets)})"
                        if s.user_unsets
                        else ""
                    ),
                    {"rc": rc, "findings": doc["findings"], "steps": doc["steps"]},
                )
                warnings = sorted(f["id"] for f in doc["findings"])
                self.say(f"     plan after: remaining warnings {warnings}")


class _Phase:
    def __init__(self, runner: Runner, name: str) -> None:
        self.runner, self.name = runner, name

    def __enter__(self) -> None:
        self.t0 = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        self.runner.timings[self.name] = round(time.monotonic() - self.t0, 2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario", choices=sorted(sc.BY_ID))
    ap.add_argument(
        "--qfix",
        type=Path,
        default=Path(sys.executable).parent / "qfix",
        help="the qfix console script (default: beside this Python)",
    )
    ap.add_argument(
        "--work",
        type=Path,
        default=None,
        help="working folder (default .cache/repairs/runs/<id>, emptied first)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the working folder (the venv)")
    args = ap.parse_args(argv)
    scenario = sc.get(args.scenario)
    if not args.qfix.exists():
        ap.error(f"no qfix at {args.qfix}: install qfix into this Python first")
    work = (args.work or CACHE / "runs" / scenario.id).resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    if scenario.heavy:
        free_gb = shutil.disk_usage(work).free / 2**30
        print(f"[{scenario.id}] free disk at {work}: {free_gb:.1f} GB", flush=True)
        if free_gb < HEAVY_MIN_FREE_GB:
            print(f"[{scenario.id}] FAILED: needs {HEAVY_MIN_FREE_GB} GB free", flush=True)
            return 1
        from tests.repairs import heavy

        if not heavy.REAL_TORCH_2141.is_file():
            print(
                f"[{scenario.id}] FAILED: {heavy.REAL_TORCH_2141} is not on this machine",
                flush=True,
            )
            return 1
    runner = Runner(scenario, args.qfix.resolve(), work)
    t0 = time.monotonic()
    status, error = "passed", None
    try:
        runner.main()
    except Failed as exc:
        status, error = "failed", str(exc)
    except subprocess.TimeoutExpired as exc:
        status, error = "failed", f"timed out: {' '.join(map(str, exc.cmd[:4]))} ..."
    total = round(time.monotonic() - t0, 1)
    results = CACHE / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{scenario.id}.json").write_text(
        json.dumps(
            {
                "scenario": scenario.id,
                "status": status,
                "error": error,
                "seconds": total,
                "phases": runner.timings,
                "checks": runner.checks,
            },
            indent=1,
        )
        + "\n"
    )
    # A failed light scenario keeps its venv to look at; the heavy one is always removed (5.5 GB)
    # unless --keep.
    if not args.keep and (error is None or scenario.heavy):
        shutil.rmtree(work, ignore_errors=True)
        if scenario.heavy:
            shutil.rmtree(CACHE / "heavy" / "wheels", ignore_errors=True)  # the 1.1 GB relabel
    phases = ", ".join(f"{k} {v}s" for k, v in runner.timings.items())
    if error is not None:
        print(f"[{scenario.id}] FAILED after {total}s: {error}", flush=True)
        if work.exists():
            print(f"[{scenario.id}] the venv is kept in {work}", flush=True)
        return 1
    print(f"[{scenario.id}] passed: {len(runner.checks)} checks in {total}s ({phases})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
