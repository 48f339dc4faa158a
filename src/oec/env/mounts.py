"""What a sandboxed command sees of the host: the system read-only, its own workspace, nothing else.

bubblewrap starts from an empty root. Bound into it: the system's program and
library folders, an /etc holding copies of the few entries that programs read
(users, hosts, the loader's cache, locale and certificates; never shadow or
credentials), the interpreter's installation, the few files oec's tools need,
and the workspace. Everything else is absent, not merely read-only: the
user's home, the project and run directories with their gold patches and
records, other rollouts' workspaces, the task's source repository with its
history, /run and every host socket in it (the docker socket above all).
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from oec.cache import build_once, cache_root

__all__ = ["SYSTEM_DIRS", "bwrap_args", "interpreter_roots", "python_env_roots"]

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: /etc entries programs read (copied into the sandbox's /etc); globs allowed. Never: shadow, gshadow, sudoers,
#: ssh, machine-id, gitconfig, resolv.conf
ETC_ENTRIES = (
    "passwd", "group", "hosts", "hostname", "nsswitch.conf", "host.conf", "gai.conf",
    "localtime", "timezone", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives",
    "mime.types", "services", "protocols", "os-release", "debian_version", "lsb-release",
    "ssl", "ca-certificates", "ca-certificates.conf", "fonts", "terminfo", "inputrc", "magic",
    "magic.mime", "python3", "python3.*", "java-*", "locale.alias", "locale.gen", "default/locale",
)


def _etc_entries() -> list[Path]:
    etc = Path("/etc")
    return [entry for pattern in ETC_ENTRIES for entry in sorted(etc.glob(pattern)) if entry.exists()]


def _etc_key(entries: list[Path]) -> str:
    """What the view is built from: every file's path, kind, size, mtime and link target."""
    digest = hashlib.sha256()
    for entry in entries:
        for path in [entry, *(sorted(entry.rglob("*")) if entry.is_dir() and not entry.is_symlink() else [])]:
            info = path.lstat()
            target = os.readlink(path) if path.is_symlink() else ""
            digest.update(f"{path}\0{info.st_mode}\0{info.st_size}\0{info.st_mtime_ns}\0{target}\n".encode())
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def etc_view(cache_dir: Path | None = None) -> Path:
    """A folder holding copies of the /etc entries commands may read, bound as the sandbox's /etc.

    One bind instead of thirty (each costs bubblewrap a mount, ~0.2 ms a command); built once per
    content of those entries into the cache, and renamed into place so concurrent builders agree.
    """
    entries = _etc_entries()

    def build(folder: Path) -> None:
        for entry in entries:
            target = folder / entry.relative_to("/etc")
            target.parent.mkdir(parents=True, exist_ok=True)
            if entry.is_dir() and not entry.is_symlink():
                shutil.copytree(entry, target, symlinks=True)
            else:  # a symlink to a file (localtime) is copied as the file it names
                shutil.copy2(entry, target)

    return build_once(cache_root(cache_dir) / "sandbox-etc" / _etc_key(entries), build)


@functools.lru_cache(maxsize=1)
def _system_args() -> tuple[str, ...]:
    """Binds of the system folders (symlinks kept as symlinks, as on merged-/usr systems) and of the /etc view."""
    args: list[str] = []
    for folder in SYSTEM_DIRS:
        path = Path(folder)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), folder]
        elif path.is_dir():
            args += ["--ro-bind", folder, folder]
    return (*args, "--ro-bind", str(etc_view()), "/etc")


def _covered(path: Path, by: Iterable[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in by)


def python_env_roots(bin_dir: Path) -> list[Path]:
    """The folders an environment's interpreter needs: the environment, and the installation a venv points to."""
    roots = [bin_dir.parent]
    config = bin_dir.parent / "pyvenv.cfg"
    if config.is_file():
        for line in config.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home" and value.strip():
                roots.append(Path(value.strip()).parent)
    for name in ("python", "python3"):
        exe = bin_dir / name
        if exe.exists():
            roots.append(exe.resolve().parent.parent)
    return _distinct(roots)


def interpreter_roots() -> list[Path]:
    """The folders oec's own interpreter needs (tasks without a python_env run their tests under it)."""
    roots = [Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix), Path(sys.base_exec_prefix)]
    return _distinct([*roots, *python_env_roots(Path(sys.executable).parent)])


def _distinct(paths: Iterable[Path]) -> list[Path]:
    """Absolute, existing, without duplicates, never the root folder itself."""
    seen: list[Path] = []
    for path in paths:
        path = Path(os.path.abspath(path))
        if path != Path("/") and path.exists() and path not in seen:
            seen.append(path)
    return seen


def bwrap_args(workspace: Path, tmp: Path, read_only: Sequence[Path] = ()) -> list[str]:
    """bubblewrap's flags: the view above, a private /tmp (`tmp`), the workspace writable, no namespace shared.

    `read_only`: folders or files shown at their own paths (interpreters, a base
    store, oec's tool scripts). Order matters: /tmp is laid before them, so one
    that lives under /tmp is bound on top of the private /tmp, not hidden by it.
    """
    args = [*_system_args(), "--dev", "/dev", "--proc", "/proc", "--bind", str(tmp), "/tmp"]
    system = [Path(d) for d in SYSTEM_DIRS if Path(d).is_dir() and not Path(d).is_symlink()]
    bound: list[Path] = []
    for path in _distinct(sorted(read_only, key=lambda p: len(Path(p).parts))):
        if _covered(path, system) or _covered(path, bound) or _covered(path, [workspace]):
            continue
        args += ["--ro-bind", str(path), str(path)]
        bound.append(path)
    args += ["--bind", str(workspace), str(workspace), "--symlink", "/tmp", "/var/tmp",
             "--unshare-all", "--die-with-parent", "--cap-drop", "ALL", "--new-session",
             "--chdir", str(workspace), "--remount-ro", "/"]
    return args
