"""The embedded AWS endpoint: moto's server, with its DynamoDB operations made atomic.

moto's DynamoDB takes no lock. A TransactWriteItems copies the tables it touches and, when a
condition fails, puts the copies back, undoing whatever another request wrote to those tables
meanwhile; and a transaction's condition check can interleave with another request's write.
DynamoDB serializes both, and the subscribe hand-off (chalicelib/fanout.py) relies on it, so
here every DynamoDB operation runs under one lock.

    python -m local.moto_server -H 127.0.0.1 -p 4566      (what local/endpoint.py starts)
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.server import main

_LOCK = threading.RLock()


def _serialized(operation: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(operation)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return operation(*args, **kwargs)

    return locked


for _name, _value in list(vars(DynamoDBBackend).items()):
    if callable(_value) and not _name.startswith("_"):
        setattr(DynamoDBBackend, _name, _serialized(_value))


if __name__ == "__main__":
    main()
