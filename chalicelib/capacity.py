"""How many runs the platform drives at once and for how long, in one place.

The executor's SQS event source (app.py), the local poller, the runs queue (infra/data.yaml),
the stages (.chalice/config.json) and the runtime's wait queue all follow these numbers;
tests/infra checks that they agree.
"""

# Executor invocations at once: the SQS event source's maximum_concurrency (AWS's minimum is 2).
EXECUTOR_CONCURRENCY = 5
# A runtime task runs one generation and lets this many wait (then answers 429), so a burst at
# the cap fits in one task however the load balancer spreads it.
RUNTIME_QUEUE_SIZE = EXECUTOR_CONCURRENCY - 1

EXECUTOR_TIMEOUT_SECONDS = 150
# AWS asks for at least six times the function's timeout on a Lambda-consumed queue.
RUNS_VISIBILITY_TIMEOUT_SECONDS = 6 * EXECUTOR_TIMEOUT_SECONDS
# Receives before the queue dead-letters a message; AWS advises at least 5 for a Lambda consumer.
MAX_RECEIVES = 10
# The executor gives up on a busy or unreachable runtime itself, before the queue would.
RUN_ATTEMPTS = MAX_RECEIVES - 2
# Waits between attempts double from this, up to the cap.
RETRY_BASE_SECONDS = 2
RETRY_CAP_SECONDS = 60

# A run still running this long after it started has lost its executor (Lambda's timeout).
RUNNING_DEADLINE_SECONDS = EXECUTOR_TIMEOUT_SECONDS + 30
# A run still pending this long after it was created has had its message dead-lettered.
PENDING_DEADLINE_SECONDS = MAX_RECEIVES * RUNS_VISIBILITY_TIMEOUT_SECONDS

# A document that moved neither its status nor chunks_done for this long has lost its indexer:
# the ingest queue's visibility timeout (infra/data.yaml) twice over, so a redelivery had its turn.
INGEST_VISIBILITY_TIMEOUT_SECONDS = 900
INDEXING_DEADLINE_SECONDS = 2 * INGEST_VISIBILITY_TIMEOUT_SECONDS
