"""Paths the service and the workers open: confined to a root, symlinks refused, at each use.

At submit, a client path is checked for length, then resolved and required inside the data
root (`resolve_inside`); what is stored is that resolved, real path. Later, whenever a
stored path is opened (a log read, a manifest write, a job's data), it is opened by walking
its components from a descriptor of the root, each with `O_NOFOLLOW`: a component that is a
symlink (planted, or swapped in after submit) is refused, and since every step opens
relative to the descriptor of the step before, a swap between a check and the open cannot
redirect it. Files open with `O_NONBLOCK` and must be regular files (a FIFO cannot hang a
reader). Any symlink below the root is refused, even one whose target stays inside.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from app.errors import PathRefused, RequestInvalid

MAX_PATH_CHARS = 4096  # PATH_MAX on Linux
MAX_NAME_BYTES = 255  # NAME_MAX on Linux
FILESYSTEM_ROOT = Path("/")

INVALID = "path_invalid"  # the error type of a path refused by its text
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class PathOutsideDataRoot(RequestInvalid):
    """A client path that is too long, malformed, or resolves outside the data root."""

    def __init__(
        self,
        field: str,
        path: str,
        data_root: Path,
        why: str | None = None,
        kind: str = "path_outside_data_root",
    ) -> None:
        self.field = field
        self.path = path
        self.data_root = data_root
        msg = why or f"{path!r} resolves outside the data root {str(data_root)!r}"
        super().__init__([{"loc": ["body", field], "msg": msg, "type": kind}])


def check_path_text(raw: str, *, field: str, data_root: Path) -> None:
    """Refuse a path by its text alone, before anything touches the file system."""
    if len(raw) > MAX_PATH_CHARS:
        why = f"a path of {len(raw)} characters is longer than {MAX_PATH_CHARS}"
        raise PathOutsideDataRoot(field, raw[:64] + "…", data_root, why, INVALID)
    if "\x00" in raw:
        raise PathOutsideDataRoot(field, raw, data_root, "a path must not contain NUL", INVALID)
    try:
        names = [part.encode("utf-8") for part in raw.split("/")]
    except UnicodeEncodeError:
        why = "a path must be valid UTF-8"
        raise PathOutsideDataRoot(field, repr(raw[:64]), data_root, why, INVALID) from None
    if any(len(name) > MAX_NAME_BYTES for name in names):
        why = f"a path component is longer than {MAX_NAME_BYTES} bytes"
        raise PathOutsideDataRoot(field, raw[:64] + "…", data_root, why, INVALID)


def resolve_inside(raw: str, *, field: str, data_root: Path) -> Path:
    """Resolve `raw` (relative paths are taken from the data root) and require it inside."""
    check_path_text(raw, field=field, data_root=data_root)
    root = data_root.resolve()
    candidate = Path(raw).expanduser() if raw.startswith("~") else Path(raw)
    resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
    # resolve() follows symlinks, so a link that points outside is caught here too.
    if not resolved.is_relative_to(root):
        raise PathOutsideDataRoot(field, raw, root)
    return resolved


def _names_below(path: Path, root: Path) -> list[str]:
    """The components of `path` below `root`; refuses anything but a plain path inside."""
    text = os.fspath(path)
    if not os.path.isabs(text) or os.path.normpath(text) != text.rstrip("/") or "\x00" in text:
        raise PathRefused(text, os.fspath(root), "is not a plain absolute path")
    if not path.is_relative_to(root):
        raise PathRefused(text, os.fspath(root), "lies outside the root")
    return list(path.relative_to(root).parts)


def _refuse_link(parent_fd: int, name: str, path: Path, root: Path, exc: OSError) -> None:
    """After a failed no-follow open: a symlink is refused; other errors go on as they are."""
    if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink: nothing else says ELOOP here
        raise PathRefused(os.fspath(path), os.fspath(root), f"goes through the symlink {name!r}")
    if exc.errno != errno.ENOTDIR:
        return
    # O_DIRECTORY | O_NOFOLLOW says ENOTDIR for a symlink and for a file alike.
    try:
        mode = os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode
    except OSError:
        mode = 0
    if stat.S_ISLNK(mode):
        raise PathRefused(os.fspath(path), os.fspath(root), f"goes through the symlink {name!r}")
    if not stat.S_ISREG(mode):  # a folder now, or gone: it was swapped while being opened
        raise PathRefused(os.fspath(path), os.fspath(root), f"{name!r} changed while opened")


def _step(parent_fd: int, name: str, path: Path, root: Path, create: bool) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        if not create:
            raise
    except OSError as exc:
        _refuse_link(parent_fd, name, path, root, exc)
        raise
    with contextlib.suppress(FileExistsError):  # made meanwhile: opened (and checked) below
        os.mkdir(name, 0o755, dir_fd=parent_fd)
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        _refuse_link(parent_fd, name, path, root, exc)
        raise


def open_dir(path: Path, *, root: Path = FILESYSTEM_ROOT, create: bool = False) -> int:
    """A descriptor of the folder `path`, reached from `root` without following any symlink.

    With `create`, missing folders are made on the way (each checked as it is entered).
    The caller closes the descriptor.
    """
    names = _names_below(path, root)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return _walk(fd, names, path, root, create)
    finally:
        os.close(fd)


def open_dir_at(start_fd: int, relative: Path, *, create: bool = False) -> int:
    """A descriptor of the folder `relative` below the open folder `start_fd`, reached
    without following any symlink (`relative` may be empty: the folder itself, again)."""
    names = list(relative.parts)
    if relative.is_absolute() or any(name in ("..", ".") for name in names):
        raise PathRefused(os.fspath(relative), "<folder>", "is not a plain relative path")
    return _walk(start_fd, names, relative, Path("<folder>"), create)


def _walk(start_fd: int, names: list[str], path: Path, root: Path, create: bool) -> int:
    """Step through `names` from `start_fd` (left open); a new descriptor of the last."""
    fd = os.dup(start_fd)
    try:
        for name in names:
            child = _step(fd, name, path, root, create)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def confined_dir(
    path: Path, *, root: Path = FILESYSTEM_ROOT, create: bool = False
) -> Iterator[int]:
    """`open_dir` as a context manager that closes the descriptor."""
    fd = open_dir(path, root=root, create=create)
    try:
        yield fd
    finally:
        os.close(fd)


def open_in(dir_fd: int, name: str, flags: int = os.O_RDONLY, mode: int = 0o644) -> int:
    """Open `name` inside an open folder: never through a symlink, never a FIFO or device."""
    if not name or "/" in name or name in (".", ".."):
        raise PathRefused(name, "<folder>", "is not a plain file name")
    fd = os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode, dir_fd=dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise PathRefused(name, "<folder>", "is not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_atomic_in(dir_fd: int, name: str, data: bytes) -> None:
    """Write `name` in an open folder: beside it first, fsync, then rename over it (readers
    see the old file or the new one, whole), and fsync the folder (the rename is durable)."""
    temp = f".{name}.{secrets.token_hex(6)}.tmp"
    fd = open_in(dir_fd, temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=dir_fd)
        raise
    os.fsync(dir_fd)


def open_file(
    path: Path,
    *,
    root: Path = FILESYSTEM_ROOT,
    flags: int = os.O_RDONLY,
    mode: int = 0o644,
    create_dirs: bool = False,
) -> int:
    """A descriptor of the file `path`, confined to `root` (see the module's docstring)."""
    with confined_dir(path.parent, root=root, create=create_dirs) as parent:
        try:
            return open_in(parent, path.name, flags, mode)
        except OSError as exc:
            _refuse_link(parent, path.name, path, root, exc)
            raise
        except PathRefused:
            raise PathRefused(os.fspath(path), os.fspath(root), "is not a regular file") from None


def open_binary(path: Path, *, root: Path = FILESYSTEM_ROOT) -> IO[bytes]:
    """The regular file `path` opened for reading, confined to `root`."""
    return os.fdopen(open_file(path, root=root), "rb")


def check_confined(path: Path, *, root: Path = FILESYSTEM_ROOT) -> None:
    """Refuse `path` if it leaves `root` or any existing component is a symlink.

    Components that do not exist yet pass (they are made, confined, when first written).
    """
    names = _names_below(path, root)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for index, name in enumerate(names):
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                return
            except OSError as exc:
                _refuse_link(fd, name, path, root, exc)
                if index == len(names) - 1 and exc.errno == errno.ENOTDIR:
                    return  # the last component is a file, not a link
                raise
            os.close(fd)
            fd = child
    finally:
        os.close(fd)


def find_symlink(path: Path, *, root: Path, seen: set[Path] | None = None) -> Path | None:
    """The first component of `path` below `root` that is a symlink now, or None.

    A quick check for submit (`lstat`, folders already checked in `seen` are skipped);
    the race-free check is the confined open at each use.
    """
    names = _names_below(path, root)
    current = root
    for name in names:
        current = current / name
        if seen is not None and current in seen:
            continue
        try:
            mode = os.lstat(current).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return None  # nothing there yet (or a file in the way: writing it will say so)
        if stat.S_ISLNK(mode):
            return current
        if seen is not None and stat.S_ISDIR(mode):
            seen.add(current)
    return None
