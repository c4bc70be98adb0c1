"""The S3 server the object-storage tests write to (one per test session), and a fresh
bucket and AWS_* environment per test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests import s3


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[s3.S3Server]:
    server = s3.start(tmp_path_factory.mktemp("moto") / "moto_server.log")
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class S3Warehouse:
    """A warehouse place in a bucket of its own: `uri` for the CLI and deltalake."""

    server: s3.S3Server
    bucket: str
    uri: str

    def table(self, name: str) -> str:
        return f"{self.uri}/{name}"


@pytest.fixture
def s3_wh(s3_server: s3.S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Warehouse:
    """`s3://<new bucket>/wh`, with this process's and its CLI children's AWS_* variables
    pointing at the server (and nothing of the machine's own AWS setup read)."""
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    bucket = s3_server.bucket()
    return S3Warehouse(s3_server, bucket, f"s3://{bucket}/wh")
