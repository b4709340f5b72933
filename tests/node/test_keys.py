"""Node key files: the private key is 0600 from the moment it exists and never overwritten.

Each test plays the attacker or the unlucky operator: a permissive umask, a spy on the
system calls to catch a brief 0644 window, an existing key or a planted symlink at the
path, a crash half way through the write, a private key path that the public key would
overwrite.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from emsbench import dsse
from node.keys import keygen


@pytest.fixture
def umask() -> Iterator[Callable[[int], int]]:
    """``os.umask`` for the test; the previous umask is restored after."""
    old = os.umask(0o022)  # the only way to read the umask is to set it
    try:
        yield os.umask
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.mark.parametrize("mask", [0, 0o022, 0o077, 0o277])
def test_private_key_mode_is_exactly_0600(tmp_path: Path, umask: Callable[[int], int],
                                          mask: int) -> None:
    # umask 0 would leave a write-then-chmod file at 0666 for a moment; 0o277 would make
    # open(0600) give 0400, which fchmod corrects to the exact mode.
    umask(mask)
    key = tmp_path / "keys" / "NO.pem"
    pub_path, pub = keygen(key)
    assert mode(key) == 0o600
    assert dsse.load_private_key(key).keyid == dsse.key_id(dsse.public_key_from_b64(pub))
    assert pub_path.read_text(encoding="utf-8").strip() == pub


def test_key_file_is_created_0600_and_exclusive(tmp_path: Path, umask: Callable[[int], int],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    umask(0)
    key = tmp_path / "NO.pem"
    calls: list[tuple[Any, ...]] = []
    real_open, real_chmod, real_fchmod = os.open, os.chmod, os.fchmod

    def spy_open(path: Any, flags: int, mode: int = 0o777, *args: Any, **kw: Any) -> int:
        fd = real_open(path, flags, mode, *args, **kw)
        calls.append(("open", os.fspath(path), flags, mode, fd))
        return fd

    def spy_chmod(path: Any, mode: int, *args: Any, **kw: Any) -> None:
        calls.append(("chmod", os.fspath(path), mode))
        real_chmod(path, mode, *args, **kw)

    def spy_fchmod(fd: int, mode: int) -> None:
        calls.append(("fchmod", fd, mode))
        real_fchmod(fd, mode)

    monkeypatch.setattr(os, "open", spy_open)
    monkeypatch.setattr(os, "chmod", spy_chmod)  # Path.chmod goes through os.chmod
    monkeypatch.setattr(os, "fchmod", spy_fchmod)
    keygen(key)
    monkeypatch.undo()
    opens = [c for c in calls if c[0] == "open" and c[1] == str(key)]
    assert len(opens) == 1
    _, _, flags, created_mode, fd = opens[0]
    assert created_mode == 0o600
    assert flags & os.O_CREAT and flags & os.O_EXCL and flags & os.O_WRONLY
    # Nothing changed the key file's mode before it was created, and nothing ever set a
    # mode other than 0600 on it (by path or on its descriptor).
    first = calls.index(opens[0])
    assert not [c for c in calls[:first] if c[0] == "chmod" and c[1] == str(key)]
    key_modes = [c[2] for c in calls
                 if (c[0] == "chmod" and c[1] == str(key)) or (c[0] == "fchmod" and c[1] == fd)]
    assert key_modes and set(key_modes) == {0o600}
    assert mode(key) == 0o600


def test_an_existing_key_is_never_overwritten(tmp_path: Path) -> None:
    key = tmp_path / "NO.pem"
    key.write_bytes(b"the node's real identity")
    pub = tmp_path / "NO.pub"
    pub.write_text("the real public key\n")
    with pytest.raises(FileExistsError, match="exists; remove it first"):
        keygen(key)
    assert key.read_bytes() == b"the node's real identity"
    assert pub.read_text() == "the real public key\n"  # not replaced by a new public key
    assert not (tmp_path / "NO.pub.pem").exists()
    # The lower level refuses too, whoever calls it.
    with pytest.raises(FileExistsError):
        dsse.save_private_key(dsse.generate_key(), key)
    assert key.read_bytes() == b"the node's real identity"


def test_existing_empty_file_or_directory_is_not_replaced(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pem"
    empty.touch()
    with pytest.raises(FileExistsError):
        keygen(empty)
    assert empty.read_bytes() == b""
    folder = tmp_path / "dir.pem"
    folder.mkdir()
    with pytest.raises(FileExistsError):
        keygen(folder)
    assert folder.is_dir()


def test_a_planted_symlink_is_not_followed(tmp_path: Path) -> None:
    # Someone who can write the key folder points NO.pem at a file they can read, or at a
    # file the node owner would not want clobbered.
    target = tmp_path / "attacker-readable.txt"
    target.write_text("original")
    link = tmp_path / "NO.pem"
    link.symlink_to(target)
    with pytest.raises(FileExistsError):
        keygen(link)
    assert target.read_text() == "original"
    # A dangling link would let the write create the target: also refused.
    dangling = tmp_path / "SE.pem"
    dangling.symlink_to(tmp_path / "not-yet.pem")
    with pytest.raises(FileExistsError):
        keygen(dangling)
    assert not (tmp_path / "not-yet.pem").exists()


def test_a_failed_write_leaves_no_partial_key(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    key = tmp_path / "NO.pem"
    with pytest.raises(OSError, match="No space left"):
        keygen(key)
    # A truncated key would make the next keygen refuse and signing fail.
    assert not key.exists() and not key.with_suffix(".pub").exists()
    monkeypatch.undo()
    keygen(key)
    assert dsse.load_private_key(key).keyid


def test_private_key_path_ending_in_pub_is_refused(tmp_path: Path) -> None:
    # "NO.pub" would be overwritten by the public key right after, losing the private key.
    with pytest.raises(ValueError, match="must not end in .pub"):
        keygen(tmp_path / "NO.pub")
    assert list(tmp_path.iterdir()) == []
