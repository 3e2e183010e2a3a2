"""Plays the Lambda Python runtime for one function, in an interpreter started with `-I -S`:
only the unzipped package (LAMBDA_TASK_ROOT) and the runtime's own boto3 on sys.path, the
handler module imported once, then each event invoked with its own X-Ray trace header.

Usage: python -I -S lambda_bootstrap.py BOTO3_DIR EVENTS_JSON; prints one JSON answer per event.
It imports nothing from the repository: the package must bring everything its handlers use.
"""

import importlib
import json
import os
import sys
import time
import traceback
import uuid

boto3_dir, events_path = sys.argv[1], sys.argv[2]
# The order the Python runtime uses: the function's code first, the runtime's SDK after it.
sys.path[:0] = [os.environ["LAMBDA_TASK_ROOT"], boto3_dir]


class Context:
    """The context object the runtime hands a handler."""

    def __init__(self) -> None:
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
        self.invoked_function_arn = (
            f"arn:aws:lambda:{os.environ['AWS_REGION']}:123456789012:function:{self.function_name}"
        )
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
        self._deadline = time.monotonic() + 60

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


module_name, _, handler_name = os.environ["_HANDLER"].rpartition(".")
answers = []
try:
    handler = getattr(importlib.import_module(module_name), handler_name)
except Exception:  # noqa: BLE001 - the runtime reports an init error the same way: type and trace
    print(json.dumps([{"init_error": traceback.format_exc()}]))
    sys.exit(0)
with open(events_path) as events:
    for event in json.load(events):
        trace_id = f"1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
        os.environ["_X_AMZN_TRACE_ID"] = f"Root={trace_id};Parent={uuid.uuid4().hex[:16]};Sampled=1"
        try:
            answers.append({"trace_id": trace_id, "result": handler(event, Context())})
        except Exception:  # noqa: BLE001 - an invocation error, as Lambda reports it
            answers.append({"trace_id": trace_id, "error": traceback.format_exc()})
print(json.dumps(answers))
