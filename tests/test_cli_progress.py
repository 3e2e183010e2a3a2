"""The progress lines of `./dynavera upload` (cli/progress.py): on a pipe, on a terminal."""

from __future__ import annotations

import io
from pathlib import Path

from cli.progress import ProgressLines
from cli.upload import FileUpload


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def at(path: str, status: str, done: int = 0, total: int = 0) -> FileUpload:
    return FileUpload(Path(path), status=status, chunks_done=done, chunks_total=total)


def test_a_pipe_gets_a_line_per_change_of_status_not_per_chunk() -> None:
    out = io.StringIO()
    lines = ProgressLines(out)
    for done in (0, 5, 10):
        lines(at("paper.pdf", "embedding", done, 10))
    lines(at("paper.pdf", "indexed", 10, 10))
    lines(at("old.md", "unchanged", 4, 4))
    scan = at("scan.pdf", "failed")
    scan.error = {"code": "no_text", "message": "No text could be extracted (a scanned or blank PDF?)."}
    lines(scan)
    printed = out.getvalue().splitlines()
    assert len(printed) == 4
    assert printed[0].startswith("paper.pdf") and "[--------------------]" in printed[0]
    assert printed[0].endswith("0/10 chunks  embedding")
    assert "[####################]" in printed[1] and printed[1].endswith("10/10 chunks  indexed")
    assert "[####################]" in printed[2] and printed[2].endswith("unchanged (not sent again)")
    assert printed[3].startswith("scan.pdf") and "failed    no_text: No text could be extracted" in printed[3]


def test_a_file_still_waiting_when_the_wait_ends_is_named_with_its_code() -> None:
    out = io.StringIO()
    lines = ProgressLines(out)
    lines(at("big.pdf", "queued"))
    late = at("big.pdf", "queued")
    late.error = {"code": "timeout", "message": "still queued when the wait ended"}
    lines(late)
    assert out.getvalue().splitlines()[-1].endswith("queued    timeout: still queued when the wait ended")


def test_a_terminal_redraws_one_line_per_file_in_place() -> None:
    out = Terminal()
    lines = ProgressLines(out)
    a1, b0, a2 = at("a.md", "embedding", 1, 4), at("b.md", "embedding", 0, 2), at("a.md", "embedding", 2, 4)
    for upload in (a1, b0, a2):
        lines(upload)
    clear = "\x1b[2K"
    assert out.getvalue() == (
        f"{clear}{lines.line(a1)}\n"
        f"\x1b[1F{clear}{lines.line(a1)}\n{clear}{lines.line(b0)}\n"  # back over the one line drawn
        f"\x1b[2F{clear}{lines.line(a2)}\n{clear}{lines.line(b0)}\n"  # a.md moves on in its own place
    )
    assert "[##########----------]" in lines.line(a2)


def test_long_names_are_cut_to_keep_the_bars_in_a_column() -> None:
    lines = ProgressLines(io.StringIO(), width=12)
    long_line = lines.line(at("a-very-long-file-name.md", "embedding", 1, 2))
    short_line = lines.line(at("short.md", "embedding", 1, 2))
    assert long_line.index("[") == short_line.index("[") == 13
    assert long_line.startswith("a-very-long…")
