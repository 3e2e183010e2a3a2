"""Where `make run` keeps the local stack's state between runs, and `make reset`, which drops it.

The embedded moto endpoint snapshots its backends to `build/aws/` (local/moto_server.py), the
Chroma server keeps the index in `build/chroma/`; both survive a restart and go together, so
the index never outlives the tables that describe it. Stdlib only: `make reset` needs no venv.

    python -m local.state reset [--build DIR]
"""

from __future__ import annotations

import argparse
import fcntl
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

BUILD = Path(__file__).resolve().parent.parent / "build"


class StateInUse(RuntimeError):
    """The state is held by a running endpoint: deleting it now would be undone at its exit."""


@dataclass(frozen=True)
class LocalState:
    build: Path = BUILD

    @property
    def aws(self) -> Path:
        return self.build / "aws"

    @property
    def aws_snapshot(self) -> Path:
        return self.aws / "moto.pickle"

    @property
    def aws_lock(self) -> Path:
        return self.aws / "moto.lock"

    @property
    def chroma(self) -> Path:
        return self.build / "chroma"

    @property
    def demo_key(self) -> Path:
        return self.build / "demo_api_key"

    def reset(self) -> list[Path]:
        """Remove the endpoint's snapshot, the index and the demo key (gone with its table); what went."""
        if self.aws_lock.exists():
            with self.aws_lock.open("a") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise StateInUse(
                        f"An AWS endpoint is running on {self.aws}: stop 'make run' first, then reset."
                    ) from None
        removed = [path for path in (self.aws, self.chroma, self.demo_key) if path.exists()]
        for path in removed:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        return removed


def hold(lock_path: Path) -> object:
    """Take the state's lock for this process's life (the open file is the lock); StateInUse if held."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = lock_path.open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StateInUse(f"Another AWS endpoint already keeps its state in {lock_path.parent}.") from None
    return handle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.state", description=__doc__)
    parser.add_argument("command", choices=["reset"])
    parser.add_argument("--build", type=Path, default=BUILD, help="the build directory (default: build/)")
    args = parser.parse_args(argv)
    try:
        removed = LocalState(args.build).reset()
    except StateInUse as err:
        print(f"make reset: {err}", file=sys.stderr)
        return 1
    gone = ", ".join(str(path) for path in removed) or "nothing to remove"
    print(f"Local state reset ({gone}); the next 'make run' starts clean.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
