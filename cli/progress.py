"""What `./dynavera upload` and `make run` show while files go up and get indexed: one line per
file with a bar of its chunks, redrawn in place on a terminal, a line per change of status when
the output is a pipe or a log."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from cli.upload import FileUpload

BAR = 20


class ProgressLines:
    """A `cli.upload.Progress`: call it with a file's latest state."""

    def __init__(self, out: TextIO, width: int = 28) -> None:
        self.out = out
        self.tty = out.isatty()
        self.width = width
        self.lines: dict[Path, str] = {}
        self.shown = 0
        self.statuses: dict[Path, str] = {}

    def __call__(self, upload: FileUpload) -> None:
        self.lines[upload.path] = self.line(upload)
        if self.tty:
            # Back to the first line drawn, then every line again (files may have been added).
            up = f"\x1b[{self.shown}F" if self.shown else ""
            self.out.write(up + "".join(f"\x1b[2K{line}\n" for line in self.lines.values()))
            self.shown = len(self.lines)
        elif self.statuses.get(upload.path) != upload.status or upload.error:
            self.out.write(self.lines[upload.path] + "\n")
        self.statuses[upload.path] = upload.status
        self.out.flush()

    def line(self, upload: FileUpload) -> str:
        name = upload.path.name if len(upload.path.name) <= self.width else upload.path.name[: self.width - 1] + "…"
        if upload.error:
            return f"{name:<{self.width}} {upload.status:<9} {upload.error['code']}: {upload.error['message']}"
        done, total = upload.chunks_done, upload.chunks_total
        full = upload.status in ("indexed", "unchanged")
        filled = BAR if full else (BAR * done // total if total else 0)
        count = f"{done}/{total} chunks" if total else ""
        note = " (not sent again)" if upload.status == "unchanged" else ""
        return f"{name:<{self.width}} [{'#' * filled}{'-' * (BAR - filled)}] {count:>16}  {upload.status}{note}"
