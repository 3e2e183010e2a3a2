"""cli/upload.py without a stack: which files an upload takes, and the progress lines it prints."""

from __future__ import annotations

import io
from pathlib import Path

from cli.upload import FileUpload, ProgressLines, files_in


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_folders_give_their_documents_in_order_and_a_named_file_is_taken_whatever_its_type(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    for name in ("b/z.PDF", "a.md", "b/c.txt", "skip.docx", "b/.hidden.png"):
        (tmp_path / name).write_bytes(b"x")
    named = tmp_path / "skip.docx"
    assert files_in([tmp_path, named, tmp_path / "a.md"]) == [
        tmp_path / "a.md", tmp_path / "b" / "c.txt", tmp_path / "b" / "z.PDF", named
    ]


def embedding(path: Path, done: int, total: int) -> FileUpload:
    upload = FileUpload(path)
    upload.follow({"status": "embedding", "chunks_done": done, "chunks_total": total})
    return upload


def test_a_pipe_gets_a_line_per_change_of_status_not_per_chunk() -> None:
    out = io.StringIO()
    lines = ProgressLines(out)
    for done in (0, 5, 10):
        lines(embedding(Path("paper.pdf"), done, 10))
    finished = embedding(Path("paper.pdf"), 10, 10)
    finished.follow({"status": "indexed", "chunks_done": 10, "chunks_total": 10})
    lines(finished)
    failed = FileUpload(Path("scan.pdf"))
    failed.fail("no_text", "No text could be extracted (a scanned or blank PDF?).")
    lines(failed)
    printed = out.getvalue().splitlines()
    assert len(printed) == 3
    assert printed[0].startswith("paper.pdf") and "[--------------------]" in printed[0]
    assert printed[0].endswith("embedding")
    assert "[####################]" in printed[1] and "10/10 chunks" in printed[1] and printed[1].endswith("indexed")
    assert printed[2].startswith("scan.pdf") and "failed   no_text: No text could be extracted" in printed[2]


def test_a_terminal_redraws_one_line_per_file_in_place() -> None:
    out = Terminal()
    lines = ProgressLines(out)
    a1, b0, a2 = embedding(Path("a.md"), 1, 4), embedding(Path("b.md"), 0, 2), embedding(Path("a.md"), 2, 4)
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
    long_line = lines.line(embedding(Path("a-very-long-file-name.md"), 1, 2))
    short_line = lines.line(embedding(Path("short.md"), 1, 2))
    assert long_line.index("[") == short_line.index("[") == 13
    assert long_line.startswith("a-very-long…")
