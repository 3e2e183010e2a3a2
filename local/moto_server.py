"""The embedded AWS endpoint: moto's server, with its DynamoDB operations made atomic and, given
`--state FILE`, its data kept across restarts.

moto's DynamoDB takes no lock. A TransactWriteItems copies the tables it touches and, when a
condition fails, puts the copies back, undoing whatever another request wrote to those tables
meanwhile; and a transaction's condition check can interleave with another request's write.
DynamoDB serializes both, and the subscribe hand-off (chalicelib/delivery.py) relies on it, so
here every DynamoDB operation runs under one lock.

moto keeps everything in memory and has no persistence of its own (getmoto/moto#1069, #9755).
With `--state`, the backends in use (every account and region) are pickled to FILE whenever a
request changed something, at most every SNAPSHOT_EVERY seconds, and once more at exit; they
are restored before the first request is served. The snapshot is written to a temporary file
and renamed, so a crash leaves the previous one whole.

    python -m local.moto_server -H 127.0.0.1 -p 4566 [--state build/aws/moto.pickle]
"""

from __future__ import annotations

import argparse
import functools
import io
import logging
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import moto
from moto.core.base_backend import BackendDict
from moto.dynamodb.models import DynamoDBBackend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

from local.state import StateInUse, hold

log = logging.getLogger("local.moto_server")

_LOCK = threading.RLock()
SNAPSHOT_EVERY = 2.0  # seconds: what a crash (not a stop) may lose
PARENT_CHECK_EVERY = 1.0


def _serialized(operation: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(operation)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return operation(*args, **kwargs)

    return locked


for _name, _value in list(vars(DynamoDBBackend).items()):
    if callable(_value) and not _name.startswith("_"):
        setattr(DynamoDBBackend, _name, _serialized(_value))


class StaleSnapshot(RuntimeError):
    """A snapshot this moto cannot take back: another version wrote it, or it is unreadable."""


# moto's models hold thread locks (S3 keys, id generators) and conditions (an SQS queue's, which
# long polls wait on); pickle cannot copy a lock, and a restored model wants a fresh one anyway,
# unheld and with no waiter of the old process.
_LOCK_FACTORIES: dict[type, Callable[[], Any]] = {
    type(threading.Lock()): threading.Lock,
    type(threading.RLock()): threading.RLock,
    threading.Condition: threading.Condition,
}


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        factory = _LOCK_FACTORIES.get(type(obj))
        return (factory, ()) if factory else NotImplemented


# A BackendDict's own fields; any other attribute is state (S3's bucket_accounts registry).
_BACKEND_DICT_FIELDS = {"backend", "service_name", "_use_boto3_regions", "_additional_regions", "_id"}


def _backend_dicts() -> Iterable[tuple[str, str, BackendDict[Any]]]:
    """The BackendDicts that hold data, each with the module attribute it lives in."""
    for backends in list(BackendDict._instances):
        module = sys.modules[backends.backend.__module__]
        name = next((n for n, value in vars(module).items() if value is backends), None)
        if name is None:
            log.warning("Not kept across restarts: %s (not found in %s).", backends.service_name, module.__name__)
            continue
        yield module.__name__, name, backends


def _dumps() -> bytes:
    backends = [
        (
            module,
            name,
            {k: v for k, v in vars(found).items() if k not in _BACKEND_DICT_FIELDS},
            {account: dict(regions) for account, regions in found.items()},
        )
        for module, name, found in _backend_dicts()
    ]
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump({"moto": moto.__version__, "backends": backends})
    return buffer.getvalue()


def save(path: Path) -> None:
    """Write every backend in use to `path`, atomically."""
    # Under the DynamoDB lock the tables are still; another service changing a dict mid-pickle
    # raises RuntimeError, and the next try catches it quiet.
    for _attempt in range(10):
        try:
            with _LOCK:
                data = _dumps()
            break
        except RuntimeError:
            continue
    else:
        log.error("Could not snapshot the endpoint: it never held still.")
        return
    partial = path.with_suffix(".partial")
    with partial.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)


def restore(path: Path) -> None:
    """Put the backends of a snapshot back in place, before any request is served."""
    try:
        snapshot = pickle.loads(path.read_bytes())
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError) as err:
        raise StaleSnapshot(f"{path} cannot be read ({err}): run 'make reset' to start clean.") from err
    if not isinstance(snapshot, dict) or snapshot.get("moto") != moto.__version__:
        written_by = snapshot.get("moto") if isinstance(snapshot, dict) else "something else"
        raise StaleSnapshot(
            f"{path} was written by moto {written_by}, this is moto {moto.__version__}: "
            "run 'make reset' to start clean."
        )
    for module, name, attributes, accounts in snapshot["backends"]:
        __import__(module)
        backends: BackendDict[Any] = getattr(sys.modules[module], name)
        vars(backends).update(attributes)
        for account, regions in accounts.items():
            for region, backend in regions.items():
                # dict's own __setitem__: the account's lazy region factory would build an empty one.
                dict.__setitem__(backends[account], region, backend)


# Operations (the X-Amz-Target's last part) that change nothing worth keeping. A receive moves a
# message in flight, which a restart may forget: SQS redelivers it, as it would anyway.
READ_OPERATIONS = ("Get", "Describe", "List", "Query", "Scan", "BatchGet", "Receive")


def changes_state(environ: dict[str, Any]) -> bool:
    """Whether a request may change the endpoint's data: not a GET or HEAD (S3 reads), nor a
    JSON-protocol read (DynamoDB, SQS), so the poller's receive every second saves nothing."""
    if environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
        return False
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    return not (target and target.rsplit(".", 1)[-1].startswith(READ_OPERATIONS))


class Snapshots:
    """Counts the requests that may change the data and saves the backends when some came since
    the last save."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.requests = 0
        self.saved_at = 0
        self.stopped = threading.Event()

    def count(self, app: Callable[..., Any]) -> Callable[..., Any]:
        def counted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            if changes_state(environ):
                self.requests += 1  # GIL-atomic enough: a lost increment only delays a save
            return app(environ, start_response)

        return counted

    def save_if_changed(self) -> None:
        seen = self.requests
        if seen != self.saved_at:
            save(self.path)
            self.saved_at = seen

    def run(self) -> None:
        while not self.stopped.wait(SNAPSHOT_EVERY):
            self.save_if_changed()


def _exit_with_parent() -> None:
    """Started in a session of its own (a terminal's Ctrl-C reaches its parent, not it), it stops
    when the parent is gone, killed or not, rather than hold the port."""
    parent = os.getppid()
    while os.getppid() == parent:
        threading.Event().wait(PARENT_CHECK_EVERY)
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m local.moto_server")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=4566)
    parser.add_argument("--state", type=Path, help="keep the data in this file across restarts")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request would bury the rest
    os.environ.setdefault("MOTO_PORT", str(args.port))  # moto builds its own URLs (queue URLs) from it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    threading.Thread(target=_exit_with_parent, daemon=True).start()

    app: Callable[..., Any] = DomainDispatcherApplication(create_backend_app)
    snapshots = None
    if args.state is not None:
        try:
            _lock = hold(args.state.with_suffix(".lock"))  # held (an open file) while the process lives
            if args.state.exists():
                restore(args.state)
                log.info("Restored the endpoint's data from %s.", args.state)
        except (StateInUse, StaleSnapshot) as err:
            sys.exit(f"moto_server: {err}")
        snapshots = Snapshots(args.state)
        app = snapshots.count(app)
        threading.Thread(target=snapshots.run, daemon=True).start()
    try:
        run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    finally:
        if snapshots is not None:
            snapshots.stopped.set()
            snapshots.save_if_changed()


if __name__ == "__main__":
    main()
