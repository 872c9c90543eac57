"""app.paths: stored paths open confined to a root, through no symlink, even under a swap race."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from app.errors import PathRefused
from app.paths import check_confined, find_symlink, open_binary, open_dir, open_file

SECRET = b"SECRET outside the data root\n"
INSIDE = b"inside\n"


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A data root holding runs/1/train.log, and a folder outside it holding a secret."""
    root, outside = tmp_path / "data", tmp_path / "outside"
    (root / "runs" / "1").mkdir(parents=True)
    (root / "runs" / "1" / "train.log").write_bytes(INSIDE)
    outside.mkdir()
    (outside / "train.log").write_bytes(SECRET)
    return root, outside


def test_a_plain_file_inside_opens(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    with open_binary(root / "runs" / "1" / "train.log", root=root) as handle:
        assert handle.read() == INSIDE


def test_a_symlinked_file_is_refused(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    (root / "runs" / "1" / "train.log").unlink()
    (root / "runs" / "1" / "train.log").symlink_to(outside / "train.log")
    with pytest.raises(PathRefused, match=r"symlink 'train\.log'"):
        open_binary(root / "runs" / "1" / "train.log", root=root)


def test_a_symlinked_folder_on_the_way_is_refused(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    (root / "runs" / "2").symlink_to(outside, target_is_directory=True)
    with pytest.raises(PathRefused, match="symlink '2'"):
        open_binary(root / "runs" / "2" / "train.log", root=root)
    assert find_symlink(root / "runs" / "2" / "train.log", root=root) == root / "runs" / "2"
    with pytest.raises(PathRefused):
        check_confined(root / "runs" / "2" / "later" / "train.log", root=root)


def test_a_symlink_that_stays_inside_is_refused_too(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    (root / "alias").symlink_to(root / "runs", target_is_directory=True)
    with pytest.raises(PathRefused):
        open_binary(root / "alias" / "1" / "train.log", root=root)


@pytest.mark.parametrize(
    "path", ["/etc/passwd", "runs/../../outside/train.log", "runs/1/../1/train.log", "runs//1"]
)
def test_paths_that_leave_the_root_or_are_not_plain_are_refused(
    tree: tuple[Path, Path], path: str
) -> None:
    root, _ = tree
    target = Path(path) if path.startswith("/") else Path(f"{root}/{path}")
    with pytest.raises(PathRefused):
        open_binary(target, root=root)


def test_a_fifo_is_refused_without_blocking(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    fifo = root / "runs" / "1" / "metrics.csv"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(PathRefused, match="not a regular file"):
        open_binary(fifo, root=root)
    assert time.monotonic() - started < 1.0


def test_folders_are_made_confined(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    log = root / "runs" / "3" / "a" / "train.log"
    os.close(open_file(log, root=root, flags=flags, create_dirs=True))
    assert (root / "runs" / "3" / "a" / "train.log").is_file()
    (root / "runs" / "4").symlink_to(outside, target_is_directory=True)
    with pytest.raises(PathRefused):
        open_dir(root / "runs" / "4" / "new", root=root, create=True)
    assert not (outside / "new").exists()


def test_missing_tails_pass_the_check(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    check_confined(root / "runs" / "9" / "dose_1000" / "train.log", root=root)
    check_confined(root / "runs" / "1" / "train.log", root=root)  # a file at the end


def _swapper(folder: Path, outside: Path, stop: threading.Event) -> None:
    """Swap `folder` between a real folder and a symlink to `outside`, as fast as it can."""
    real = folder.with_name(folder.name + ".real")
    link = folder.with_name(folder.name + ".link")
    link.symlink_to(outside, target_is_directory=True)
    while not stop.is_set():
        os.rename(folder, real)  # the real folder steps aside ...
        os.rename(link, folder)  # ... a link to outside takes its name ...
        os.rename(folder, link)  # ... and leaves again
        os.rename(real, folder)


def test_a_folder_swapped_for_a_symlink_never_leads_outside(tree: tuple[Path, Path]) -> None:
    """Open runs/1/train.log thousands of times while a thread swaps runs/1 with a link."""
    root, outside = tree
    stop = threading.Event()
    swapper = threading.Thread(target=_swapper, args=(root / "runs" / "1", outside, stop))
    swapper.start()
    outcomes = {"inside": 0, "refused": 0, "missing": 0}
    deadline = time.monotonic() + 20
    try:
        for _ in range(5000):
            try:
                with open_binary(root / "runs" / "1" / "train.log", root=root) as handle:
                    content = handle.read()
            except PathRefused:
                outcomes["refused"] += 1
                continue
            except FileNotFoundError:
                outcomes["missing"] += 1  # caught between two renames
                continue
            assert content == INSIDE, "read a file outside the data root"
            outcomes["inside"] += 1
            if time.monotonic() > deadline:
                break
    finally:
        stop.set()
        swapper.join()
    assert outcomes["inside"] > 0, outcomes
    assert outcomes["refused"] > 0, outcomes


def test_the_race_is_real_for_a_plain_open(tree: tuple[Path, Path]) -> None:
    """The same swap does lead a plain `open()` outside: the test above tests something."""
    root, outside = tree
    stop = threading.Event()
    swapper = threading.Thread(target=_swapper, args=(root / "runs" / "1", outside, stop))
    swapper.start()
    leaked = False
    deadline = time.monotonic() + 10
    try:
        while not leaked and time.monotonic() < deadline:
            try:
                leaked = (root / "runs" / "1" / "train.log").read_bytes() == SECRET
            except FileNotFoundError:
                continue
    finally:
        stop.set()
        swapper.join()
    assert leaked
