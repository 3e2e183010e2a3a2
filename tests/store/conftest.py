"""The indexer's real parts: the bucket, ingest queue and tables on the suite's moto server (over
HTTP), the Chroma server, and the real embedder behind a counter."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest

import contract
from local import endpoint
from local.chroma import ChromaServer
from mcp_container.config import Settings
from mcp_container.embedder import MiniLMEmbedder
from mcp_container.indexer import Aws, Indexer, now_iso
from mcp_container.store import Store
from tests.fixtures.runtime import ROOT

EMBEDDER = ROOT / "build" / "models" / "all-MiniLM-L6-v2.onnx"


def create_tables(dynamodb: Any, settings: Settings) -> None:
    """The collections and documents tables as the contract describes them (infra/data.yaml
    holds the deployed definitions)."""
    for name, hash_key, range_key in (
        (settings.collections_table, "user_id", "collection_id"),
        (settings.documents_table, "collection_id", "document_id"),
    ):
        dynamodb.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": hash_key, "AttributeType": "S"},
                {"AttributeName": range_key, "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": hash_key, "KeyType": "HASH"},
                {"AttributeName": range_key, "KeyType": "RANGE"},
            ],
        )


def stage_settings(url: str, stage: str, chroma_url: str) -> Settings:
    """The indexer's settings for a stage of its own on the endpoint: tables and queue named by
    the stage, the bucket as the data stack names it there (the endpoint's account id in it)."""
    return Settings.from_env(
        {
            "DYNAVERA_STAGE": stage,
            "DOCUMENTS_BUCKET": contract.documents_bucket(stage, endpoint.account_id(url)),
            "DYNAVERA_CHROMA_URL": chroma_url,
            "DYNAVERA_EMBEDDER": str(EMBEDDER),
        }
    )


@pytest.fixture(scope="session")
def index_settings(aws_endpoint: str, chroma_server: ChromaServer) -> Settings:
    settings = stage_settings(aws_endpoint, f"idx{uuid.uuid4().hex[:6]}", chroma_server.url)
    create_tables(endpoint.client("dynamodb", aws_endpoint), settings)
    endpoint.client("s3", aws_endpoint).create_bucket(Bucket=settings.documents_bucket)
    endpoint.client("sqs", aws_endpoint).create_queue(QueueName=settings.ingest_queue)
    return settings


def local_aws(url: str, settings: Settings) -> Aws:
    """The indexer's clients on the local endpoint, with the credentials a child process gets."""
    env = endpoint.aws_environment(url, "")
    dynamodb = boto3.resource(
        "dynamodb",
        endpoint_url=url,
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    return Aws(endpoint.client("s3", url), endpoint.client("sqs", url), dynamodb, settings)


@pytest.fixture(scope="session")
def aws(aws_endpoint: str, index_settings: Settings) -> Aws:
    return local_aws(aws_endpoint, index_settings)


@pytest.fixture(scope="session")
def minilm() -> MiniLMEmbedder:
    embedder = MiniLMEmbedder(EMBEDDER)
    embedder.load()
    return embedder


class CountingEmbedder:
    """The real embedder, counting every text it embeds; `gate`, when set, holds each call
    until the test opens it (a slow embed), after saying so on `entered`."""

    def __init__(self, inner: MiniLMEmbedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.embedded: list[str] = []
        self.entered = threading.Event()
        self.gate: threading.Event | None = None

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.entered.set()
        if self.gate is not None and not self.gate.wait(60):
            raise TimeoutError("the test never opened the gate")
        self.embedded.extend(texts)
        return self.inner.embed(texts)


@pytest.fixture
def embedder(minilm: MiniLMEmbedder) -> CountingEmbedder:
    return CountingEmbedder(minilm)


@pytest.fixture(scope="session")
def store(index_settings: Settings) -> Store:
    return Store.open(index_settings)


@pytest.fixture
def indexer(aws: Aws, store: Store, embedder: CountingEmbedder) -> Indexer:
    return Indexer(aws, store, embedder)


@dataclass
class Library:
    """One user's collection on the endpoint, made as the API makes it (rows, then the upload)."""

    aws: Aws
    user_id: str
    collection_id: str

    def collection(self) -> dict[str, Any]:
        return self.aws.collections.get_item(
            Key={"user_id": self.user_id, "collection_id": self.collection_id}, ConsistentRead=True
        )["Item"]

    def add(self, filename: str, data: bytes, declared: int | None = None, upload: bool = True) -> str:
        """A document as the API makes it: its row, counted in the collection, then the bytes."""
        document_id = str(uuid.uuid4())
        now = now_iso()
        self.aws.documents.put_item(
            Item={
                "collection_id": self.collection_id,
                "document_id": document_id,
                "user_id": self.user_id,
                "filename": filename,
                "size": len(data) if declared is None else declared,
                "status": "awaiting_upload",
                "chunks_total": 0,
                "chunks_done": 0,
                "created_at": now,
                "updated_at": now,
            }
        )
        if upload:
            self.aws.s3.put_object(Bucket=self.aws.bucket, Key=self.key(document_id), Body=data)
        return document_id

    def key(self, document_id: str) -> str:
        return contract.upload_key(self.user_id, self.collection_id, document_id)

    def notification(self, document_id: str) -> str:
        """What S3 sends the ingest queue when the upload lands (its key URL-encoded, as S3 does)."""
        record = {
            "eventSource": "aws:s3",
            "eventName": "ObjectCreated:Post",
            "s3": {"bucket": {"name": self.aws.bucket}, "object": {"key": quote_plus(self.key(document_id))}},
        }
        return json.dumps({"Records": [record]})

    def row(self, document_id: str) -> dict[str, Any] | None:
        return self.aws.documents.get_item(
            Key={"collection_id": self.collection_id, "document_id": document_id}, ConsistentRead=True
        ).get("Item")

    def has_chunks_file(self, document_id: str) -> bool:
        listed = self.aws.s3.list_objects_v2(
            Bucket=self.aws.bucket, Prefix=contract.chunks_key(self.collection_id, document_id)
        )
        return listed.get("KeyCount", 0) > 0


@pytest.fixture
def library(aws: Aws) -> Iterator[Library]:
    # A user id that S3 must URL-encode in its notifications.
    shelf = Library(aws, f"user {uuid.uuid4().hex[:6]}+x", str(uuid.uuid4()))
    now = now_iso()
    aws.collections.put_item(
        Item={
            "user_id": shelf.user_id,
            "collection_id": shelf.collection_id,
            "name": "papers",
            "description": "",
            "status": "active",
            "document_count": 0,
            "chunk_count": 0,
            "created_at": now,
            "updated_at": now,
        }
    )
    yield shelf
