"""An S3-compatible store for tests: moto's server (PyPI `moto[server]`) as a real process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.servers import free_port, wait_for_port

# moto accepts any credentials; clients must still send some (boto3 signs every request).
ACCESS_KEY, SECRET_KEY, REGION = "streamflow-test", "streamflow-test-secret", "us-east-1"


class S3Server:
    """`moto_server` on a free loopback port, its log in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.port = 0
        self._proc: subprocess.Popen | None = None

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

    def start(self) -> S3Server:
        moto = Path(sys.executable).with_name("moto_server")
        if not moto.exists():
            raise RuntimeError(f"{moto} is missing: `make install` (moto[server], dev group)")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self._proc = subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=(self.directory / "moto.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, timeout_s=120)  # its imports take a while on busy cores
        return self

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
