"""The local SQS event source mapping: long-polls the runs queue and invokes the Chalice SQS
handler with Lambda-shaped events, as the deployed mapping does: the batch size and the
maximum concurrency are the app's own, so a local burst queues as it would in AWS.

The runs queue is an SQS fair queue (each message's MessageGroupId is its user): AWS hands a
quiet tenant's messages out ahead of a noisy tenant's backlog. moto keeps the group id but
not the fairness, so the poller plays it: it holds what it received, and each free worker
takes the oldest message of the tenant with the fewest invocations running.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
import uuid
from collections import Counter, deque
from typing import Any

import boto3

from local.lambda_runtime import LambdaContext

log = logging.getLogger("dynavera.poller")
# Received messages held for the workers at most; AWS's in-flight limit on a standard queue is 120,000.
MAX_HELD = 1000


def lambda_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


class FairShare:
    """Messages received and not yet invoked, by tenant, handed out fairly to the workers."""

    def __init__(self) -> None:
        self.waiting: dict[str, deque[tuple[float, dict[str, Any]]]] = {}
        self.running: Counter[str] = Counter()
        self.changed = threading.Condition()

    def __len__(self) -> int:
        with self.changed:
            return sum(len(messages) for messages in self.waiting.values())

    def put(self, messages: list[dict[str, Any]]) -> None:
        with self.changed:
            for message in messages:
                self.waiting.setdefault(tenant(message), deque()).append((time.monotonic(), message))
            self.changed.notify_all()

    def take(self, timeout: float) -> dict[str, Any] | None:
        """The oldest message of the tenant with the fewest invocations running (then the
        tenant whose oldest message waited longest); None when nothing came within timeout."""
        with self.changed:
            if not self.changed.wait_for(lambda: self.waiting, timeout):
                return None
            group = min(self.waiting, key=lambda g: (self.running[g], self.waiting[g][0][0]))
            _, message = self.waiting[group].popleft()
            if not self.waiting[group]:
                del self.waiting[group]
            self.running[group] += 1
            return message

    def done(self, message: dict[str, Any]) -> None:
        with self.changed:
            group = tenant(message)
            self.running[group] -= 1
            if self.running[group] <= 0:
                del self.running[group]

    def held_since(self, before: float) -> list[dict[str, Any]]:
        """Messages held since before `before`, their hold renewed from now."""
        renewed = []
        with self.changed:
            for group, messages in self.waiting.items():
                fresh: deque[tuple[float, dict[str, Any]]] = deque()
                for since, message in messages:
                    if since < before:
                        renewed.append(message)
                        since = time.monotonic()
                    fresh.append((since, message))
                self.waiting[group] = fresh
        return renewed


def tenant(message: dict[str, Any]) -> str:
    # A message sent without a group (older code) is its own tenant: it never waits behind one.
    return message.get("Attributes", {}).get("MessageGroupId") or message["MessageId"]


class Poller:
    def __init__(self, handler: Any, queue_name: str, batch_size: int, function_name: str, sqs: Any = None) -> None:
        self.handler = handler
        self.batch_size = batch_size
        self.function_name = function_name
        self.sqs = sqs or boto3.client("sqs")
        self.queue_url = self.sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
        self.queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.region = self.sqs.meta.region_name
        self.visibility_timeout = int(
            self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["VisibilityTimeout"])[
                "Attributes"
            ]["VisibilityTimeout"]
        )
        self.stopping = threading.Event()
        self.held = FairShare()

    def _receive(self, wait_seconds: int, count: int) -> list[dict[str, Any]]:
        return self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])

    def poll_once(self, wait_seconds: int = 1) -> int:
        """One receive and one invocation, in the caller's thread (the in-process tests' step)."""
        messages = self._receive(wait_seconds, self.batch_size)
        if messages:
            self.invoke(messages)
        return len(messages)

    def invoke(self, messages: list[dict[str, Any]]) -> None:
        event = {"Records": [lambda_record(m, self.queue_arn, self.region) for m in messages]}
        try:
            result = self.handler(event, LambdaContext(function_name=self.function_name)) or {}
        except Exception:
            # As in Lambda: a failed invocation leaves the whole batch to the visibility
            # timeout, and the queue's redrive policy to the DLQ.
            log.exception("invocation failed; %d message(s) left for redelivery", len(messages))
            return
        failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )

    def run(self, workers: int) -> None:
        threads = [threading.Thread(target=self._receive_all, daemon=True)]
        threads += [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _receive_all(self) -> None:
        """Everything visible on the queue, held for the workers: fairness needs to see past
        a noisy tenant's backlog to the quiet tenant's message behind it."""
        while not self.stopping.is_set():
            try:
                if len(self.held) < MAX_HELD:
                    self.held.put(self._receive(1, 10))
                else:
                    self.stopping.wait(0.2)
                self._renew_held()
            except Exception:
                log.exception("polling the runs queue failed; retrying")
                self.stopping.wait(1)

    def _renew_held(self) -> None:
        # A held message must not become visible again (a second delivery) while it waits.
        for message in self.held.held_since(time.monotonic() - self.visibility_timeout / 3):
            self.sqs.change_message_visibility(
                QueueUrl=self.queue_url,
                ReceiptHandle=message["ReceiptHandle"],
                VisibilityTimeout=self.visibility_timeout,
            )

    def _work(self) -> None:
        while not self.stopping.is_set():
            message = self.held.take(timeout=1.0)
            if message is None:
                continue
            try:
                self.invoke([message])
            except Exception:
                log.exception("invoking the executor failed; the message is left for redelivery")
            finally:
                self.held.done(message)


def scheduled_event() -> dict[str, Any]:
    """An EventBridge "Scheduled Event", as the sweeper's rule delivers it."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/dynavera-sweep"],
        "detail": {},
    }


def sweep_forever(sweepers: dict[str, Any], every: float, stopping: threading.Event) -> None:
    """Plays the sweepers' schedules: each scheduled function by its name."""
    while not stopping.wait(every):
        for name, sweeper in sweepers.items():
            try:
                sweeper(scheduled_event(), LambdaContext(function_name=f"dynavera-{name}"))
            except Exception:
                log.exception("the sweeper %s failed", name)


def main() -> None:
    parser = argparse.ArgumentParser(description="Feed the runs queue to the executor, as Lambda's SQS mapping does.")
    parser.add_argument("--sweep-every", type=float, default=60.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import app as app_module

    source = _runs_source(app_module.app)
    poller = Poller(
        app_module.run_executions, app_module.settings.runs_queue_name, source.batch_size, "dynavera-run_executions"
    )
    sweepers = {
        "sweep_stuck_executions": app_module.sweep_stuck_executions,
        "sweep_stuck_documents": app_module.sweep_stuck_documents,
    }
    threading.Thread(target=sweep_forever, args=(sweepers, args.sweep_every, poller.stopping), daemon=True).start()
    poller.run(source.maximum_concurrency or 1)


def _runs_source(chalice_app: Any) -> Any:
    """The app's SQS event source: its batch size and maximum concurrency are the deployed ones."""
    from chalice.app import SQSEventConfig

    return next(s for s in chalice_app.event_sources if isinstance(s, SQSEventConfig))


if __name__ == "__main__":
    main()
