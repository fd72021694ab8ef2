"""The sandbox that runs model-written code (quantgate.lmeval.sandbox) and the pass@k functions."""

import os
import socket
import subprocess
import sys

import pytest

from quantgate.lmeval.code_eval import CodeExecutionRefused, allow_code_execution, pass_at_1, pass_at_k
from quantgate.lmeval.sandbox import Limits, isolation, run_program

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="the full sandbox (own uid and namespaces) needs root")


def test_exit_status_decides_and_a_hung_program_times_out():
    assert run_program("assert sorted([3, 1, 2]) == [1, 2, 3]\n").status == "passed"
    failed = run_program("assert 1 + 1 == 3\n")
    assert failed.status == "failed" and "AssertionError" in failed.stderr_tail
    assert run_program("import time\ntime.sleep(60)\n", Limits(wall_seconds=1)).status == "timeout"
    assert run_program("while True:\n    pass\n", Limits(cpu_seconds=1, wall_seconds=30)).status == "failed"


def test_the_environment_is_scrubbed(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-leak")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    program = ("import os\nassert set(os.environ) <= {'PATH', 'HOME', 'TMPDIR', 'LANG', 'PYTHONDONTWRITEBYTECODE',"
               " 'LC_CTYPE'}, sorted(os.environ)\n")
    assert run_program(program).passed


def test_memory_and_file_size_limits():
    assert run_program("x = bytearray(4 * 1024 ** 3)\n").status == "failed"
    big = "open('big', 'wb').write(b'x' * (8 * 1024 * 1024))\n"
    assert run_program(big, Limits(file_bytes=1024 * 1024)).status == "failed"
    assert run_program("open('small', 'w').write('ok')\nassert open('small').read() == 'ok'\n").passed


@ROOT_ONLY
def test_as_root_the_program_gets_its_own_uid_network_and_tmp():
    assert isolation() == "root"
    program = ("import os\nassert os.getuid() >= 1_700_000_000 and os.getgid() == os.getuid()\n"
               "assert os.getcwd() == '/tmp' and os.listdir('.') == ['program.py']\n"
               "assert not os.path.exists('/var/run/secrets/kubernetes.io')\n")
    assert run_program(program).passed


@ROOT_ONLY
def test_attacks_that_work_unconfined_fail_in_the_sandbox(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("sk-file-secret")
    secret.chmod(0o600)
    loot = tmp_path / "loot"
    loot.mkdir()
    loot.chmod(0o777)  # world-writable: only the sandbox's own view of the file system keeps it out
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    attacks = {
        "read a 0600 file": f"assert open({str(secret)!r}).read() == 'sk-file-secret'\n",
        "write outside": f"open({str(loot / 'marker')!r}, 'w').write('x')\n",
        "connect to loopback": f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=3).close()\n",
        "read the runner's environment": f"assert b'PATH=' in open('/proc/{os.getpid()}/environ', 'rb').read()\n",
    }
    for name, program in attacks.items():  # the control: each attack works when not confined
        plain = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
        assert plain.returncode == 0, f"control: {name} should work unconfined: {plain.stderr}"
    (loot / "marker").unlink()
    listener.accept()[0].close()  # the control's connection
    for name, program in attacks.items():
        assert run_program(program).status == "failed", name
    assert list(loot.iterdir()) == []
    with pytest.raises(socket.timeout):
        listener.accept()  # nothing connected from the sandbox
    listener.close()


def test_scoring_refuses_without_the_opt_in_and_keeps_lm_evals_contracts():
    tests = "assert add(2, 3) == 5"
    right, wrong = "def add(a, b):\n    return a + b", "def add(a, b):\n    return a * b"
    with pytest.raises(CodeExecutionRefused, match="--allow-code-execution"):
        pass_at_k([tests], [[right]], k=[1])
    with pytest.raises(CodeExecutionRefused):
        pass_at_1(tests, [right])
    with allow_code_execution():
        assert pass_at_k([tests, tests], [[right], [wrong]], k=[1]) == {"pass@1": 0.5}
        assert pass_at_k([tests], [[right, wrong, wrong, right]], k=[1, 2]) == {"pass@1": 0.5, "pass@2": 5 / 6}
        assert pass_at_1(tests, [right]) == 1.0 and pass_at_1([tests], [wrong]) == 0.0
    with pytest.raises(CodeExecutionRefused):
        pass_at_1(tests, [right])  # the opt-in ends with its block
