"""HTTPS endpoints behind a private CA: the runner trusts exactly the bundle it is given.

The simulator serves HTTPS with a certificate from a CA this test creates; nothing here is
in the system trust store, so every success below went through --ca-bundle.
"""

import json

import pytest

from quantgate.cli import main
from quantgate.dev import pki
from quantgate.simulate import SimulatedFleet


@pytest.fixture(scope="module")
def pkidir(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = pki.make_ca(d, "company-ca")
    server = pki.issue(ca, d, "endpoint", "llm.models.svc", server_names=("127.0.0.1", "localhost"))
    other = pki.make_ca(d, "other-ca")
    return {"ca": ca.cert, "other": other.cert, "cert": server.cert, "key": server.key, "dir": d}


@pytest.fixture(scope="module")
def fleet(pkidir):
    tls = {"tlsCertFile": str(pkidir["cert"]), "tlsKeyFile": str(pkidir["key"])}
    with SimulatedFleet({"variants": [{"name": "secure", "model": "m-secure", **tls}]}) as f:
        yield f


def _run(fleet, out, *extra):
    return main(["run", "--endpoint", fleet.url("secure"), "--suite", "local", "--limit", "3", "--output", str(out),
                 *extra])


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "error:" in line]


@pytest.mark.parametrize("extra", [[], ["--ca-bundle", "other"]], ids=["system-cas", "wrong-ca"])
def test_untrusted_certificate_fails_the_preflight_with_one_tls_line(fleet, pkidir, tmp_path, capsys, extra):
    extra = [str(pkidir[x]) if x in pkidir else x for x in extra]
    before = fleet.stats("secure")["completions"]
    rc = _run(fleet, tmp_path / "out", *extra)
    err = capsys.readouterr().err
    assert rc == 15, err
    [line] = _error_lines(err)
    assert "TLS" in line and "certificate verify failed" in line and "caBundle" in line, line
    assert "Traceback" not in err
    assert fleet.stats("secure")["completions"] == before  # no lm-eval work was started
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


@pytest.mark.parametrize("concurrency", ["32", "1"], ids=["aiohttp", "requests"])
def test_with_the_bundle_the_evaluation_succeeds(fleet, pkidir, tmp_path, capsys, concurrency):
    before = fleet.stats("secure")["completions"]
    rc = _run(fleet, tmp_path / "out", "--ca-bundle", str(pkidir["ca"]), "--concurrency", concurrency)
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["complete"] is True and manifest["tlsVerify"] == "caBundle"
    assert manifest["endpoint"].startswith("https://")
    results = json.loads(next((tmp_path / "out").glob("results_*.json")).read_text())
    assert set(results["results"]) >= {"gsm8k", "arc_challenge", "hellaswag"}
    assert fleet.stats("secure")["completions"] > before


def test_insecure_skip_verify_works_and_says_so_loudly(fleet, tmp_path, capsys):
    rc = main(["run", "--endpoint", fleet.url("secure"), "--suite", "local", "--tasks", "gsm8k@3", "--output",
               str(tmp_path / "out"), "--insecure-skip-verify"])
    rc = rc if rc is not None else 0
    captured = capsys.readouterr()
    assert rc == 2 and "either --suite or --tasks" in captured.err  # bad input first: one line
    rc = main(["run", "--endpoint", fleet.url("secure"), "--local-data", "--tasks", "gsm8k@3", "--output",
               str(tmp_path / "out"), "--insecure-skip-verify"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "TLS certificate verification is OFF" in captured.err + captured.out
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["tlsVerify"] == "off"


@pytest.mark.parametrize("content", ["not a certificate\n", None], ids=["not-pem", "missing"])
def test_an_unusable_bundle_is_bad_input(fleet, tmp_path, capsys, content):
    bundle = tmp_path / "bundle.pem"
    if content is not None:
        bundle.write_text(content)
    rc = _run(fleet, tmp_path / "out", "--ca-bundle", str(bundle))
    err = capsys.readouterr().err
    assert rc == 2, err
    [line] = _error_lines(err)
    assert "CA bundle" in line and "Traceback" not in err


def test_ca_bundle_and_insecure_together_are_refused(fleet, pkidir, tmp_path, capsys):
    rc = _run(fleet, tmp_path / "out", "--ca-bundle", str(pkidir["ca"]), "--insecure-skip-verify")
    err = capsys.readouterr().err
    assert rc == 2 and len(_error_lines(err)) == 1 and "not both" in err


def test_evaluate_local_passes_the_bundle_to_both_runs(fleet, pkidir, tmp_path, capsys):
    import yaml

    src = {"endpoint": {"url": fleet.url("secure"), "model": "m-secure"}, "caBundle": {"name": "company-ca"}}
    spec = {"apiVersion": "quantgate.io/v1alpha1", "kind": "ModelEvaluation", "metadata": {"name": "tls"},
            "spec": {"baseline": src, "candidate": src, "suite": "local", "tasks": [{"name": "gsm8k", "limit": 3}]}}
    (tmp_path / "e.yaml").write_text(yaml.safe_dump(spec))
    args = ["evaluate", "--local", "-f", str(tmp_path / "e.yaml"), "-o", str(tmp_path / "out"), "--local-data"]
    assert main(args) == 15  # no bundle: each run's preflight refuses the certificate
    capsys.readouterr()
    rc = main([*args, "--ca-bundle", str(pkidir["ca"])])
    captured = capsys.readouterr()
    assert rc == 0, captured.err  # the same model on both sides: Ship
    for role in ("baseline", "candidate"):
        assert json.loads((tmp_path / "out" / role / "manifest.json").read_text())["tlsVerify"] == "caBundle"
