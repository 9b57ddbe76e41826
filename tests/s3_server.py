"""An S3-compatible store for tests: moto's server (PyPI `moto[server]`) as a real process."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.servers import ServerProcess

# moto accepts any credentials; clients must still send some (boto3 signs every request).
ACCESS_KEY, SECRET_KEY, REGION = "streamflow-test", "streamflow-test-secret", "us-east-1"


class S3Server(ServerProcess):
    """`moto_server` on a free loopback port, its log in `directory`."""

    log_name = "moto.log"
    start_timeout_s = 120.0  # its imports take a while on busy cores

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """What a process (the MLflow server) needs to use this store through boto3."""
        return {
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }

    def client(self):  # -> botocore S3 client
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def prepare(self) -> None:
        if not self._moto().exists():
            raise RuntimeError(
                f"{self._moto()} is missing: `make install` (moto[server], dev group)"
            )

    def command(self, port: int) -> list[str]:
        return [str(self._moto()), "-H", "127.0.0.1", "-p", str(port)]

    @staticmethod
    def _moto() -> Path:
        return Path(sys.executable).with_name("moto_server")
