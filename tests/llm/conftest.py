"""Fixtures for the embedded-model tests. Assembled GGUF files go to one shared cache (the repository's
git-ignored ``.shelfwise/models``, or ``SW_TEST_MODEL_CACHE``), so a test session assembles each model once
instead of copying 1.6 GB into every temporary directory."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def model_cache() -> Path:
    return Path(os.environ.get("SW_TEST_MODEL_CACHE", REPO / ".shelfwise" / "models"))


@pytest.fixture(scope="session")
def local_05b(model_cache: Path) -> Iterator:
    """The 0.5B worker model, loaded once per session (2 threads, as in production)."""
    pytest.importorskip("llama_cpp")
    from shelfwise.config import RoleConfig
    from shelfwise.llm.backends.local import LocalBackend

    backend = LocalBackend("qwen2.5-coder-0.5b", RoleConfig(max_tokens=128, max_retries=0, context_tokens=2048),
                           threads=2, cache_dir=model_cache)
    yield backend
    backend.close()


@contextlib.contextmanager
def llama_cpp_server(gguf: Path, log: Path, *extra_args: str, wait_s: float = 90) -> Iterator[str]:
    """``python -m llama_cpp.server`` on a free loopback port; yields its /v1 URL once /v1/models answers,
    and stops the server afterwards. A server that dies or never comes up fails the test with its log."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
             "--port", str(port), *extra_args],
            stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + wait_s
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama.cpp server exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama.cpp server did not come up in {wait_s:.0f} s: {log.read_text()[-2000:]}")
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
