"""The README's quick start and examples run verbatim, in order, in a directory of their own:
the server as `make serve` runs it, each shell block in one shell session (what a block
exports, the next one sees), the server started again where the README says so."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import stop_process

ROOT = Path(__file__).resolve().parents[2]
README_PORT = "127.0.0.1:8000"


def readme_blocks() -> list[str]:
    """The `sh` blocks from the quick start to the commands table, without `make` ones (the
    test serves as `make serve` does, and is itself `make test`)."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Quick start") : readme.index("## Commands")]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    return [block for block in blocks if not block.lstrip().startswith("make ")]


def json_values(output: str) -> list[object]:
    """The JSON documents curl printed one after another (without newlines between them)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while (start := output.find("{", at)) != -1:
        value, at = decoder.raw_decode(output, start)
        found.append(value)
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [".venv/bin/gateway", "serve", "--port", str(self.port)],
            cwd=self.directory,
            env={"PATH": os.environ["PATH"], "HOME": str(self.directory)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{self.port}/healthz"
        # Until it answers, or it has exited (then the blocks fail and say so).
        while self.process.poll() is None:
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None


@pytest.fixture
def fresh_clone(tmp_path: Path) -> Iterator[tuple[Path, Server]]:
    """A directory with the virtualenv `make serve` would have made, and nothing else."""
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    server = Server(tmp_path, free_port())
    try:
        yield tmp_path, server
    finally:
        server.stop()


def test_readme_examples_run_verbatim_in_order(fresh_clone: tuple[Path, Server]) -> None:
    directory, server = fresh_clone
    blocks = readme_blocks()
    assert len(blocks) >= 5, blocks
    state = directory / "exported.sh"
    state.write_text("")
    server.start()
    outputs = []
    for block in blocks:
        script = block.replace(README_PORT, f"127.0.0.1:{server.port}")
        done = subprocess.run(
            ["bash", "-c", f"set -euo pipefail\n. {state}\n{script}\nexport -p > {state}"],
            cwd=directory,
            env={"PATH": os.environ["PATH"], "HOME": str(directory)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, (block, done.stdout, done.stderr)
        outputs.append(done.stdout)
        if ".env" in block and ">>" in block:  # the README restarts the server here
            server.stop()
            server.start()
    answers = [answer for out in outputs for answer in json_values(out)]
    assert len(answers) >= 4, outputs
    for answer in answers:
        assert isinstance(answer, dict), answer
        assert "errors" not in answer and answer.get("success", True), answer
    assert "you@example.com" in "".join(outputs)
