"""Files written whole or not at all, and text quoted for TOML: for node and hub alike.

``write_atomic`` is how every file that someone else reads while it may change is written:
outbox envelopes and receipts, the trust registry (which a running hub reloads), the hub's
token. The data goes to a temporary file in the same folder (created 0600, so nothing is
ever readable before its final mode is set), is flushed to disk, given its mode, and then
renamed over the target, and the folder is synced so the rename survives a crash. A reader
sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(target: Path, data: bytes, *, mode: int | None = None,
                 exclusive: bool = False) -> Path:
    """Write ``data`` to ``target`` atomically; return ``target``.

    ``mode`` defaults to the replaced file's mode, else 0644. ``exclusive`` refuses to
    replace an existing file (FileExistsError), atomically: a signed envelope is never
    rewritten.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        try:
            mode = target.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = 0o644
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())  # the content is on disk before the name points to it
        os.chmod(tmp, mode)
        if exclusive:
            # link() fails if the target exists, atomically (no check-then-write race).
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise FileExistsError(f"{target} exists already and is never "
                                      "rewritten") from None
            tmp.unlink()
        else:
            os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a half-written file must not linger
        raise
    # The rename itself must reach the disk too, or a crash could undo it.
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return target


def toml_string(text: str) -> str:
    """A TOML basic string: escapes what TOML requires, so no value can end the string or
    the line (a hostile note, a path with quotes)."""
    out = []
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
