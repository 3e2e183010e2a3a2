"""The local SQS event source mapping: long-polls the runs queue and invokes the Chalice SQS
handler with Lambda-shaped events, as the deployed mapping does: the batch size and the
maximum concurrency are the app's own, so a local burst queues as it would in AWS."""

from __future__ import annotations

import argparse
import logging
import threading
import time
import uuid
from typing import Any

import boto3

from local.lambda_runtime import LambdaContext

log = logging.getLogger("dynavera.poller")


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
        self.stopping = threading.Event()

    def poll_once(self, wait_seconds: int = 1) -> int:
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
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
        threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _work(self) -> None:
        while not self.stopping.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("polling the runs queue failed; retrying")
                time.sleep(1)


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
