"""A real S3-compatible server for the tests: moto's server (``moto[server]``) on a free
loopback port, started once per test session, and a fresh bucket per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from patchgate.bootstrap import App, Settings, build
from patchgate.services import setup
from patchgate.services.context import Context
from tests.support import DatabaseFactory, free_port

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "patchgate-test",
    "AWS_SECRET_ACCESS_KEY": "patchgate-test-secret",
    "AWS_REGION": "eu-central-1",
}


@dataclass
class S3:
    """The running server: its endpoint and a client of its own for the tests."""

    endpoint: str
    client: S3Client

    def bucket(self) -> str:
        name = f"pg-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(
            Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
        )
        return name

    def vars(
        self, bucket: str, prefix: str = "fleet", delivery: str = "redirect"
    ) -> dict[str, str]:
        return {
            **CREDENTIALS,
            "AWS_ENDPOINT_URL": self.endpoint,
            "PATCHGATE_ARTIFACT_URL": f"s3://{bucket}/{prefix}",
            "PATCHGATE_ARTIFACT_DELIVERY": delivery,
            "PATCHGATE_ARTIFACT_PRESIGN_SECONDS": "120",
        }

    def keys(self, bucket: str) -> list[str]:
        listed = self.client.list_objects_v2(Bucket=bucket)
        return sorted(str(o["Key"]) for o in listed.get("Contents", []))


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="eu-central-1",
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(s3={"addressing_style": "path"}),
    )
    yield S3(endpoint, client)
    server.stop()


@dataclass
class S3Env:
    """An initialised installation whose artifacts live in a bucket of the moto server."""

    data_dir: Path
    database_url: str
    app: App
    s3: S3
    bucket: str
    vars: dict[str, str]

    @property
    def ctx(self) -> Context:
        return self.app.context


def make_s3_env(
    tmp_path: Path,
    databases: DatabaseFactory,
    backend: str,
    s3: S3,
    monkeypatch: pytest.MonkeyPatch,
    *,
    delivery: str = "redirect",
) -> S3Env:
    bucket = s3.bucket()
    s3_vars = s3.vars(bucket, delivery=delivery)
    for name, value in s3_vars.items():
        monkeypatch.setenv(name, value)
    data_dir = tmp_path / "data"
    url = databases.sqlite(data_dir) if backend == "sqlite" else databases.postgresql()
    app = build(_settings(data_dir, url, s3_vars))
    setup.initialise(app.context, demo=True, actor="test", demo_devices=False)
    env_vars = {"PATCHGATE_DATA_DIR": str(data_dir), "PATCHGATE_DATABASE_URL": url, **s3_vars}
    return S3Env(data_dir, url, app, s3, bucket, env_vars)


def _settings(data_dir: Path, url: str, s3_vars: dict[str, str]) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=url,
        artifact_url=s3_vars["PATCHGATE_ARTIFACT_URL"],
        artifact_delivery=s3_vars["PATCHGATE_ARTIFACT_DELIVERY"],
        artifact_presign_seconds=int(s3_vars["PATCHGATE_ARTIFACT_PRESIGN_SECONDS"]),
    )
