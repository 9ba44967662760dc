"""A real Slurm cluster on this machine for the fleet tests: munged + slurmctld + N slurmd.

Debian's slurm-wlm 22.05 (``apt-get install slurm-wlm munge slurm-client``; .ci/run installs
them). Started as root without systemd, everything under one temp folder; every daemon is
stopped by its own PID, and every client call has a time limit. What worked (measured, see
docs/fleet.md): munged as the munge user on a private socket named by ``AuthInfo=socket=``;
``slurmctld -D -i`` and one ``slurmd -D -N <node>`` per node, each node on its own port with
``NodeAddr=127.0.0.1``; ``%n`` in the slurmd spool, pid and log names; the folder must be 0755
(a 0700 folder hides munged's socket and the clients retry for minutes).

    with SlurmCluster(["n1", "n2", "n3"]) as cluster:
        cluster.env  # SLURM_CONF etc. for srun/sinfo
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "srun", "sinfo")


def unavailable() -> str | None:
    """Why a cluster cannot be started here (None when it can)."""
    missing = [d for d in DAEMONS if shutil.which(d) is None and not Path("/usr/sbin", d).exists()]
    if missing:
        return (
            f"Slurm/munge not installed ({', '.join(missing)} missing): "
            "apt-get install slurm-wlm munge slurm-client (.ci/run does)"
        )
    if os.geteuid() != 0:
        return "a local Slurm cluster needs root (slurmd runs jobs as their user)"
    try:
        pwd.getpwnam("munge")
    except KeyError:
        return "no munge user (the munge package creates it)"
    return None


def _which(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class SlurmCluster:
    def __init__(self, nodes: list[str], *, cpus: int = 1) -> None:
        # Its own 0755 folder: pytest's tmp_path is 0700 and munged (not root) must reach it.
        self.root = Path(tempfile.mkdtemp(prefix="qfix-slurm-"))
        self.nodes = nodes
        self.cpus = cpus
        self.procs: list[subprocess.Popen[bytes]] = []
        self.conf = self.root / "slurm.conf"
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))

    # ------------------------------------------------------------------ start / stop
    def __enter__(self) -> SlurmCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 30) -> None:
        r = self.root
        r.chmod(0o755)
        munge = pwd.getpwnam("munge")
        mdir = r / "munge"
        mdir.mkdir(exist_ok=True)
        os.chown(mdir, munge.pw_uid, munge.pw_gid)
        mdir.chmod(0o755)  # munged writes its socket here; the clients must reach it
        key = mdir / "munge.key"
        subprocess.run(
            [_which("mungekey"), "--create", f"--keyfile={key}", "--force"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        os.chown(key, munge.pw_uid, munge.pw_gid)
        key.chmod(0o400)
        sock = mdir / "munge.sock"
        self._spawn(
            [
                _which("munged"), "--foreground", f"--socket={sock}", f"--key-file={key}",
                f"--pid-file={mdir}/munged.pid", f"--log-file={mdir}/munged.log",
                f"--seed-file={mdir}/munged.seed", "--num-threads=2",
            ],
            user=munge,
        )  # fmt: skip
        self._wait(lambda: sock.exists(), timeout, "munged did not open its socket")
        ports = _free_ports(len(self.nodes) + 1)
        host = socket.gethostname().split(".")[0]
        lines = [
            "ClusterName=qfixtest",
            f"SlurmctldHost={host}(127.0.0.1)",
            f"SlurmctldPort={ports[0]}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={sock}",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"StateSaveLocation={r}/state",
            f"SlurmdSpoolDir={r}/spool-%n",
            f"SlurmctldPidFile={r}/slurmctld.pid",
            f"SlurmdPidFile={r}/slurmd-%n.pid",
            f"SlurmctldLogFile={r}/slurmctld.log",
            f"SlurmdLogFile={r}/slurmd-%n.log",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "ReturnToService=2",
            "MpiDefault=none",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=30",
            "InactiveLimit=0",
            "KillWait=5",
        ]
        for node, port in zip(self.nodes, ports[1:], strict=True):
            lines.append(
                f"NodeName={node} NodeHostname={host} NodeAddr=127.0.0.1 Port={port} "
                f"CPUs={self.cpus} State=UNKNOWN"
            )
        lines.append(
            f"PartitionName=qfix Nodes={','.join(self.nodes)} Default=YES MaxTime=60 State=UP"
        )
        (r / "state").mkdir(exist_ok=True)
        self.conf.write_text("\n".join(lines) + "\n")
        self.conf.chmod(0o644)
        self._spawn([_which("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        for node in self.nodes:
            (r / f"spool-{node}").mkdir(exist_ok=True)
            self._spawn([_which("slurmd"), "-D", "-N", node, "-f", str(self.conf)])
        self._wait(self._all_idle, timeout, "the slurmd nodes did not become idle")

    def _spawn(self, argv: list[str], user: pwd.struct_passwd | None = None) -> None:
        log = open(self.root / f"{Path(argv[0]).name}-{len(self.procs)}.out", "wb")  # noqa: SIM115
        kwargs: dict[str, object] = {}
        if user is not None:
            kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        self.procs.append(
            subprocess.Popen(  # noqa: S603
                argv, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                start_new_session=True, **kwargs,  # type: ignore[arg-type]
            )
        )  # fmt: skip
        log.close()

    def _wait(self, ready, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not ready():
            dead = [p.args[0] for p in self.procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"{what} (exited: {dead}); logs in {self.root}")
            time.sleep(0.2)

    def _all_idle(self) -> bool:
        done = self.client(["sinfo", "-h", "-N", "-o", "%N %t"], timeout=5, check=False)
        states = dict(line.split() for line in done.stdout.splitlines() if line.strip())
        return all(states.get(n) == "idle" for n in self.nodes)

    def client(
        self, argv: list[str], *, timeout: float, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """A Slurm client command (sinfo, srun, ...) with this cluster's conf and a time limit."""
        return subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=timeout, check=check
        )

    def stop(self) -> None:
        """Stop every daemon by its PID: TERM, then KILL after 10 s."""
        for p in reversed(self.procs):
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for p in reversed(self.procs):
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        self.procs.clear()
        if not os.environ.get("QFIX_KEEP_SLURM"):
            shutil.rmtree(self.root, ignore_errors=True)
