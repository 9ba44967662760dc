"""The snapshot of a venv before an apply, and the restore that makes it equal to it again.

* **Snapshot** before the first change: the venv's tree is mirrored into
  ``<venv>/.qfix/backup/tree`` with hard links (one ``link()`` per file, ~0.8 s for a 31,000-file
  torch + transformers venv, no bytes copied), plus a manifest of each file's size and mtime.
  pip and uv never write into an installed file: pip unlinks before writing
  (``pip/_internal/operations/install/wheel.py``, "Unlinking the file allows writing of new
  contents"), distlib's script writer removes first, uv links or renames into place. So the old
  inodes stay intact under the backup names whatever the installers do, and rollback needs no
  network and no wheel: it takes seconds even for torch. A file that *was* rewritten in place
  (its backup's size or mtime moved) is reported, never silently kept.
* **Restore** makes the tree equal to the snapshot again: whatever is not in the snapshot goes
  (new distributions, half-written files, a killed install's dist-info), every file whose inode is
  not the snapshot's is linked back. It is idempotent, so a restore killed halfway is simply
  run again.
"""

from __future__ import annotations

import contextlib
import email.parser
import errno
import os
import shutil
from collections.abc import Mapping
from typing import Any

from ..errors import RollbackFailed
from .journal import StateDir, hook, write_json
from .venv import TargetKind, TargetPaths


def snapshot_roots(target: TargetPaths, kind: TargetKind) -> list[str]:
    """The folders an install may change. For a venv its whole prefix (small, and everything in
    it is the venv's); for conda only the install folders, not the whole conda tree."""
    if kind is TargetKind.VENV:
        cands = [target.prefix, target.purelib, target.platlib, target.scripts]
    else:
        cands = [target.purelib, target.platlib, target.scripts]
    roots: list[str] = []
    for c in sorted({os.path.abspath(c) for c in cands if c and os.path.isdir(c)}, key=len):
        if not any(c == r or c.startswith(r.rstrip(os.sep) + os.sep) for r in roots):
            roots.append(c)
    return roots


class Snapshot:
    """Mirror of the roots under backup/tree/<i> with hard links; manifest of size+mtime."""

    def __init__(self, state: StateDir) -> None:
        self.state = state
        self.files: dict[str, dict[str, list[int]]] = {}
        self.special: dict[str, list[str]] = {}
        self.copied: dict[str, list[str]] = {}
        self.count = 0

    def take(self, roots: list[str]) -> int:
        tree = self.state.backup / "tree"
        tree.mkdir(parents=True)
        total = sum(1 for _ in roots)
        for i, root in enumerate(roots):
            key = str(i)
            self.files[key] = {}
            self.special[key] = []
            self.copied[key] = []
            self._mirror(root, str(tree / key), "", key, halfway=(i == total - 1))
        manifest = {
            "roots": roots,
            "files": self.files,
            "special": self.special,
            "copied": self.copied,
        }
        # Durable before the journal says "prepared": fsync of the manifest (and then of the
        # journal) commits the filesystem's metadata journal, and with it every link made
        # above, on ext4, XFS and btrfs, which log metadata in order. sync(2) would do it
        # everywhere but flushes every dirty page of the machine (seconds behind a big copy).
        write_json(self.state.manifest, manifest)
        return self.count

    def _mirror(self, src: str, dst: str, rel: str, key: str, halfway: bool) -> None:
        exclude = str(self.state.path)
        os.mkdir(dst, stat_mode(src))
        with os.scandir(src) as it:
            entries = sorted(it, key=lambda e: e.name)
        for n, e in enumerate(entries):
            if e.path == exclude:
                continue
            if halfway and rel == "" and n == len(entries) // 2:
                hook("snapshot")
            r = rel + e.name
            d = os.path.join(dst, e.name)
            if e.is_symlink():
                os.symlink(os.readlink(e.path), d)
            elif e.is_dir(follow_symlinks=False):
                self._mirror(e.path, d, r + "/", key, halfway=False)
            elif e.is_file(follow_symlinks=False):
                st = e.stat(follow_symlinks=False)
                try:
                    os.link(e.path, d)
                except OSError as exc:
                    # another filesystem under the venv, or protected_hardlinks: copy instead
                    if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                        raise
                    shutil.copy2(e.path, d, follow_symlinks=False)
                    self.copied[key].append(r)
                self.files[key][r] = [st.st_size, st.st_mtime_ns]
                self.count += 1
            else:
                self.special[key].append(r)  # sockets, fifos: left alone both ways


def stat_mode(path: str) -> int:
    return os.stat(path, follow_symlinks=False).st_mode & 0o7777


class Restorer:
    """Makes each root equal to its mirror again. Idempotent: safe to run after a killed run."""

    def __init__(self, state: StateDir, manifest: Mapping[str, Any]) -> None:
        self.state = state
        self.manifest = manifest
        self.removed = 0
        self.relinked = 0
        self.damaged: list[str] = []
        self.key = "0"

    def run(self) -> None:
        tree = self.state.backup / "tree"
        for i, root in enumerate(self.manifest["roots"]):
            self.key = str(i)
            backup = tree / self.key
            if not backup.is_dir():
                raise RollbackFailed(f"the snapshot of {root} is missing ({backup})")
            if not os.path.isdir(root):
                os.makedirs(root, exist_ok=True)
            self._sync(root, str(backup), "", top=True)

    def _sync(self, live: str, backup: str, rel: str, top: bool = False) -> None:
        exclude = str(self.state.path)
        files: Mapping[str, list[int]] = self.manifest["files"].get(self.key, {})
        special = set(self.manifest.get("special", {}).get(self.key, ()))
        copied = set(self.manifest.get("copied", {}).get(self.key, ()))
        with os.scandir(backup) as it:
            want = {e.name: e for e in it}
        with os.scandir(live) as it:
            have = {e.name: e for e in it if e.path != exclude}
        # 1. what the snapshot does not have goes: new dists, half-written files, new pycs
        for name, e in have.items():
            if name not in want and (rel + name) not in special:
                _remove(e.path)
                self.removed += 1
        if rel.endswith("site-packages/") or (top and live.rstrip(os.sep).endswith("packages")):
            hook("rollback")  # test hook: the new distributions gone, the old not yet back
        # 2. what it has comes back, with its own inode
        for name, b in want.items():
            r = rel + name
            target = os.path.join(live, name)
            h = have.get(name)
            if b.is_symlink():
                link = os.readlink(b.path)
                if h is not None and h.is_symlink() and os.readlink(target) == link:
                    continue
                if h is not None:
                    _remove(target)
                os.symlink(link, target)
                self.relinked += 1
            elif b.is_dir(follow_symlinks=False):
                if h is not None and not (h.is_dir(follow_symlinks=False) and not h.is_symlink()):
                    _remove(target)
                    h = None
                if h is None:
                    os.mkdir(target, stat_mode(b.path))
                self._sync(target, b.path, r + "/")
            else:
                bst = b.stat(follow_symlinks=False)
                expect = files.get(r)
                if expect is not None and [bst.st_size, bst.st_mtime_ns] != list(expect):
                    self.damaged.append(r)  # rewritten in place: the old bytes are gone
                if (
                    h is not None
                    and r not in copied
                    and h.is_file(follow_symlinks=False)
                    and not h.is_symlink()
                ):
                    hst = h.stat(follow_symlinks=False)
                    if (hst.st_ino, hst.st_dev) == (bst.st_ino, bst.st_dev):
                        continue
                tmp = target + ".qfix-restore"
                if os.path.lexists(tmp):
                    _remove(tmp)
                if r in copied:
                    shutil.copy2(b.path, tmp, follow_symlinks=False)
                else:
                    os.link(b.path, tmp)
                if h is not None and h.is_dir(follow_symlinks=False) and not h.is_symlink():
                    _remove(target)
                os.replace(tmp, target)
                self.relinked += 1


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


# --------------------------------------------------------------------------- distributions


def installed_versions(dirs: list[str]) -> dict[str, str]:
    """name -> version of the distributions in ``dirs`` (site-packages), read from their
    metadata files in this process (headers only), as ``pip freeze`` sees them."""
    parser = email.parser.HeaderParser()
    out: dict[str, str] = {}
    for d in dict.fromkeys(dirs):
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            continue
        for e in entries:
            if e.name.endswith(".dist-info"):
                meta = os.path.join(e.path, "METADATA")
            elif e.name.endswith(".egg-info"):
                meta = os.path.join(e.path, "PKG-INFO") if e.is_dir() else e.path
            else:
                continue
            try:
                with open(meta, encoding="utf-8", errors="replace") as f:
                    head = f.read(16384)
            except OSError:
                continue
            msg = parser.parsestr(head.split("\n\n", 1)[0] + "\n")
            name, version = msg.get("Name"), msg.get("Version")
            if name and version:
                out.setdefault(str(name).strip(), str(version).strip())
    return out
