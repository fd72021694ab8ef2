"""A model server for the sandbox tests: an OpenAI-compatible endpoint whose humaneval answers
are hostile programs.

It speaks what lm-eval's local-completions needs (GET /v1/models, POST /v1/completions with
token-id prompts, the vLLM tokenizer endpoints, using the simulator's lossless tokenizer) and
answers each humaneval prompt with a function body: one of the ATTACKS for the first problems,
the canonical solution for the rest (so the run also proves that honest code still passes).
Every attack ends by asserting that it got what it wanted: contained, it fails its sample.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from dataclasses import dataclass, field

from aiohttp import web

from quantgate.lmeval.tasks._generate_code import completions
from quantgate.simulate.tokenizer import default_tokenizer


def _body(code: str) -> str:
    """Indent a program as the body of the function under test (lm-eval appends the test code)."""
    return "".join(f"    {line}\n" for line in code.strip("\n").splitlines())


@dataclass
class Targets:
    """What the attacks aim at, all on the host."""

    api_key: str
    key_file: str  # a file holding the API key, readable only by the runner's user
    token_file: str  # a stand-in ServiceAccount token, readable only by the runner's user
    loot_dir: str  # a directory outside the sandbox where a successful attack leaves its loot
    canary: str  # a runner file an attack tries to delete
    listener_port: int  # a loopback listener an attack connects to
    run_dir: str  # the run's output directory (its .partial staging while it runs)

    def attacks(self) -> dict[str, str]:
        loot = self.loot_dir
        return {
            "read-secrets": f"""
found = []
import os, glob
for path in [{self.key_file!r}, {self.token_file!r}, "/var/run/secrets/kubernetes.io/serviceaccount/token",
             os.path.expanduser("~/.kube/config"), "/root/.kube/config"] + glob.glob("/proc/*/environ"):
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        continue
    if {self.api_key.encode()!r} in data or path in ({self.key_file!r}, {self.token_file!r}):
        found.append(path)
found += [k for k, v in os.environ.items() if {self.api_key!r} in v or k.startswith("KUBERNETES")]
try:
    with open({loot + "/secrets"!r}, "w") as fh:
        fh.write(repr(found))
except OSError:
    pass
assert found, "no secret reachable"
""",
            "write-outside": f"""
written = 0
for path in [{loot + "/outside"!r}, "/tmp/quantgate-hostile-marker", "/var/tmp/quantgate-hostile-marker",
             "/dev/shm/quantgate-hostile-marker", {self.run_dir + ".partial/hostile-marker"!r}]:
    try:
        with open(path, "w") as fh:
            fh.write("escaped")
        written += 1
    except OSError:
        pass
import os
assert os.path.exists({loot + "/outside"!r}), "could not write outside the working directory"
""",
            "network": f"""
import socket
s = socket.create_connection(("127.0.0.1", {self.listener_port}), timeout=3)
s.sendall(b"hello from the sandbox")
s.close()
""",
            "fork-bomb": """
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
""",
            "infinite-loop": """
while True:
    pass
""",
            "huge-allocation": """
block = bytearray(16 * 1024 ** 3)
for i in range(0, len(block), 4096):
    block[i] = 1
""",
            "delete-runner-files": f"""
import os, shutil
for path in [{self.canary!r}]:
    try:
        os.remove(path)
    except OSError:
        pass
shutil.rmtree({self.run_dir + ".partial"!r}, ignore_errors=True)
assert not os.path.exists({self.canary!r}), "runner files survive"
""",
            "kill-the-runner": """
import os, signal
os.kill(os.getppid(), signal.SIGKILL)
os.kill(-1, signal.SIGKILL)
""",
        }


class Listener:
    """A loopback TCP listener that records every connection it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@dataclass
class HostileModel:
    targets: Targets
    model: str = "hostile-coder"
    served: dict[str, int] = field(default_factory=dict)  # attack name → times served

    def answer(self, prompt: str) -> str:
        """The first len(ATTACKS) problems get an attack, the others their canonical solution."""
        rows = _problems()
        entry = prompt.split("def ", 1)[1].split("(", 1)[0] if prompt.startswith("def ") else ""
        if entry not in rows:
            return "    return None\n"
        n, task_id = rows[entry]
        attacks = list(self.targets.attacks().items())
        if n < len(attacks):
            name, code = attacks[n]
            self.served[name] = self.served.get(name, 0) + 1
            return _body(code)
        return completions("humaneval")[task_id][0]


def _problems() -> dict[str, tuple[int, str]]:
    """entry point → (position, task_id) of the humaneval problems."""
    from quantgate.lmeval.local_tasks import DATA_DIR

    rows = (json.loads(line) for line in (DATA_DIR / "humaneval" / "test.jsonl").read_text().splitlines())
    return {row["entry_point"]: (n, row["task_id"]) for n, row in enumerate(rows)}


def build_app(hostile: HostileModel) -> web.Application:
    tok = default_tokenizer()

    async def models(request):
        return web.json_response({"object": "list", "data": [{"id": hostile.model, "object": "model",
                                                               "max_model_len": 8192}]})

    async def complete(request):
        body = await request.json()
        raw = body.get("prompt")
        prompts = [raw] if isinstance(raw, str) or (raw and isinstance(raw[0], int)) else raw
        choices = []
        for i, p in enumerate(prompts):
            text = hostile.answer(p if isinstance(p, str) else tok.decode(p))
            choices.append({"index": i, "text": text, "logprobs": None, "finish_reason": "stop"})
        return web.json_response({"id": "x", "object": "text_completion", "model": hostile.model,
                                  "choices": choices, "usage": {}})

    async def tokenize(request):
        ids = tok.encode((await request.json()).get("prompt", ""))
        return web.json_response({"count": len(ids), "max_model_len": 8192, "tokens": ids})

    async def detokenize(request):
        return web.json_response({"prompt": tok.decode((await request.json()).get("tokens", []))})

    async def tokenizer_info(request):
        return web.json_response({"tokenizer_class": "Hostile", "eos_token": "<|endoftext|>",
                                  "model_max_length": 8192, "vocab_size": tok.vocab_size})

    async def health(request):
        return web.Response(status=200)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/completions", complete)
    app.router.add_post("/tokenize", tokenize)
    app.router.add_post("/detokenize", detokenize)
    app.router.add_get("/tokenizer_info", tokenizer_info)
    return app


class Server:
    """Serve the app on a free loopback port from a background thread."""

    def __init__(self, app: web.Application):
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.runner = web.AppRunner(app, access_log=None)
            self.loop.run_until_complete(self.runner.setup())
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            self.loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
