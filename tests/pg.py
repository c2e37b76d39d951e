"""A throwaway PostgreSQL cluster on 127.0.0.1 for the tests that need a real server.

initdb in a temp dir, `pg_ctl start` with a free port and a private socket dir, trust auth on
loopback only; installs Debian's postgresql with apt-get when the binaries are missing. As
root, the server runs as the `postgres` user (it refuses to run as root).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path


def _bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not found:
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"],
                       check=True, capture_output=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(found[-1])


def _as_pg(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgCluster:
    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, db: str = "postgres", driver: str = "psycopg") -> str:
        return f"postgresql+{driver}://postgres@127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        subprocess.run(_as_pg([_bin("pg_ctl"), "-D", str(self.data), "-w", "-t", "60", "-l",
                               str(self.root / "log"), "-o",
                               f"-h 127.0.0.1 -p {self.port} -k {self.root / 'sock'} -F", "start"]),
                       check=True, capture_output=True)

    def stop(self) -> None:
        subprocess.run(_as_pg([_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]),
                       capture_output=True)

    def createdb(self, name: str) -> str:
        subprocess.run(_as_pg([_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                               "-U", "postgres", name]), check=True, capture_output=True)
        return self.url(name)


def start_cluster(root: Path) -> PgCluster:
    root.mkdir(parents=True, exist_ok=True)
    (root / "sock").mkdir(exist_ok=True)
    if os.geteuid() == 0:
        for p in (root, root / "sock"):
            shutil.chown(p, "postgres", "postgres")
        os.chmod(root, 0o755)
    cluster = PgCluster(root, free_port())
    subprocess.run(_as_pg([_bin("initdb"), "-D", str(cluster.data), "-U", "postgres",
                           "--auth=trust", "-E", "UTF8", "--no-sync"]), check=True, capture_output=True)
    cluster.start()
    return cluster
