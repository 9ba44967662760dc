"""Checks before the first change, and what a full or read-only disk means to the user.

An apply that can be refused before it changes anything should be: a venv on a read-only bind
mount, a root made immutable (``chattr +i``), a disk without room for the downloads. Each is one
line and exit 12 (``NoResource``) with nothing changed (issue 16), instead of a traceback, or a
rollback of nothing that then "fails".
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence

from .. import shellquote
from ..errors import NoResource, resource_error

MIB = 1024 * 1024
# The journal, the snapshot's manifest (~100 bytes a file: ~3 MB for a 31,000-file venv) and the
# directories of the hard-link mirror (one block each), with room to spare.
STATE_MARGIN = 64 * MIB
# A wheel unpacks to about twice its size (torch 2.7.1+cu126: 0.9 GB wheel, 1.8 GB installed);
# pip holds the wheel in its temporary folder while it unpacks it.
UNPACK_FACTOR = 2


def mount_point(path: str) -> str:
    """The mount point that holds ``path`` (where the user frees space)."""
    path = os.path.realpath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    dev = os.stat(path).st_dev
    while path != os.path.dirname(path):
        parent = os.path.dirname(path)
        if os.stat(parent).st_dev != dev:
            break
        path = parent
    return path


def free_bytes(path: str) -> int:
    """Bytes this user may still write on the disk of ``path``. shutil.disk_usage is statvfs's
    f_bavail * f_frsize on POSIX (as before) and GetDiskFreeSpaceExW on Windows, which has no
    os.statvfs."""
    return shutil.disk_usage(path).free


def check_writable(roots: Sequence[str], action: str) -> None:
    """Create and remove a file in each root (what the installers and the snapshot will do);
    NoResource naming the root and why (read-only, immutable, permission) when one refuses."""
    for root in roots:
        try:
            fd, probe = tempfile.mkstemp(prefix=".qfix-probe-", dir=root)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            exc.filename = exc.filename or root
            raise resource_error(
                exc, action, tip="nothing was changed; make the environment writable first"
            ) from None


def check_space(prefix: str, download: Mapping[str, int | None], action: str) -> None:
    """Refuse when the disk of ``prefix`` (and of the temporary folder) cannot hold the planned
    downloads unpacked plus the transaction's own files. Unknown sizes count as zero: the check
    can only refuse what is known to fail."""
    known = sum(v for v in download.values() if isinstance(v, int) and v > 0)
    tmp = tempfile.gettempdir()
    needs: dict[str, int] = {}
    for where, amount in ((prefix, known * UNPACK_FACTOR + STATE_MARGIN), (tmp, known)):
        try:
            mount = mount_point(where)
        except OSError:
            continue
        needs[mount] = needs.get(mount, 0) + amount
    for mount, need in needs.items():
        try:
            free = free_bytes(mount)
        except OSError:
            continue
        if free < need:
            raise NoResource(
                f"could not {action}: not enough free space on {mount} ({free // MIB} MB free, "
                f"about {-(-need // MIB)} MB needed for the downloads and the rollback snapshot)",
                tip=f"nothing was changed; free {-(-(need - free) // MIB)} MB on {mount}, then "
                "apply again",
            )


def rollback_tip(prefix: str, python: str) -> str:
    """What to do when a rollback stopped on the disk: where to free space, the command."""
    try:
        mount = mount_point(prefix)
    except OSError:
        mount = prefix
    return (
        f"free at least {STATE_MARGIN // MIB} MB on {mount} (or make it writable), then run "
        f"`qfix rollback --python {shellquote.quote(python)}`; the snapshot under "
        f"{os.path.join(prefix, '.qfix')} is kept and restores the exact previous state"
    )


def describe_oserror(exc: OSError) -> str:
    """``could not ...: no space left on the device (path)`` without the 'could not' part."""
    return resource_error(exc, "x").message.removeprefix("could not x: ")
