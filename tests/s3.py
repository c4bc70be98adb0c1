"""A real S3 API on 127.0.0.1: moto in server mode, as a subprocess the tests start and stop.

`S3Server.environment()` is what a process needs to use it through the usual AWS_* variables
(deltalake, pyarrow's S3FileSystem and the `sessions` CLI all read them); `bucket()` makes a
fresh, empty bucket, so that each test has a warehouse place of its own on one server.
"""

from __future__ import annotations

import itertools
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.fs as pafs

MOTO_SERVER = Path(sys.executable).parent / "moto_server"
# Credentials moto accepts; no real account behind them.
ACCESS_KEY, SECRET_KEY = "test", "test-secret-not-real"
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class S3Server:
    process: subprocess.Popen[bytes]
    port: int
    _names: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        """The AWS_* variables that point deltalake, pyarrow and the CLI at this server."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
        }

    def storage_options(self) -> dict[str, str]:
        """The same, as deltalake's and polars' `storage_options`."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
        }

    def filesystem(self) -> pafs.S3FileSystem:
        return pafs.S3FileSystem(
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            region=REGION,
            endpoint_override=self.endpoint,
            scheme="http",
            allow_bucket_creation=True,
            allow_bucket_deletion=True,
        )

    def bucket(self) -> str:
        """A new, empty bucket's name."""
        name = f"bucket-{next(self._names)}"
        self.filesystem().create_dir(name)
        return name

    def keys(self, prefix: str) -> list[str]:
        """Every object below `bucket/prefix`, as `bucket/key`."""
        selector = pafs.FileSelector(prefix, recursive=True, allow_not_found=True)
        infos = self.filesystem().get_file_info(selector)
        return sorted(i.path for i in infos if i.type == pafs.FileType.File)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start(log: Path) -> S3Server:
    """Start moto_server on a free port of 127.0.0.1 and wait until it answers."""
    for _ in range(5):  # a port found free may be taken before the server binds it
        port = free_port()
        with log.open("ab") as out:
            process = subprocess.Popen(
                [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                    return S3Server(process, port)
            except urllib.error.HTTPError:
                return S3Server(process, port)  # it answers, if not with 200
            except OSError:
                time.sleep(0.1)
        if process.poll() is None:
            process.kill()
        process.wait()
    raise RuntimeError(f"moto_server did not start; see {log}")
