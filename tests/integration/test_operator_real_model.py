"""The operator evaluates a real-model pair on the dev cluster: SmolLM2-135M-Instruct's Q4_1 GGUF
against its Q2_K requantization, both evaluated inside the runner Job by the in-process llama.cpp
engine (`spec.*.llamaCpp`), to a verdict with the fidelity fields in status.

Needs `make tools` (the control plane) and `make tools-llama` (the model files)."""

import os

import pytest
import yaml

from operator_harness import (OperatorProcess, evaluation, install_crds, install_runner_rbac, operator_kubeconfig,
                              wait_phase)
from quantgate.engines.real_models import REFERENCE, missing, model_path

problem = missing()
if problem:
    if os.environ.get("QUANTGATE_REQUIRE_CLUSTER"):
        raise RuntimeError(f"real model test ground missing: {problem}")
    pytest.skip(f"real model test ground missing: {problem}", allow_module_level=True)


def test_operator_evaluates_a_gguf_pair_to_a_verdict_with_fidelity(cluster, tmp_path):
    from quantgate.dev.harness import create_namespace

    install_crds(cluster)
    ns = create_namespace(cluster, "real")
    install_runner_rbac(cluster, ns)
    op = OperatorProcess(cluster, tmp_path / "operator.log", "--poll-interval", "1",
                         kubeconfig=operator_kubeconfig(cluster, tmp_path))
    op.start()
    try:
        spec = evaluation("smollm2-q2k", {"llamaCpp": {"modelPath": str(model_path(REFERENCE))}},
                          {"llamaCpp": {"modelPath": str(model_path("Q2_K"))}},
                          suite="local", tasks=[{"name": "arc_challenge", "numFewshot": 0, "limit": 40}])
        cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(spec))
        obj = wait_phase(cluster, "smollm2-q2k", ns, ("Succeeded", "Failed"), timeout=900)
        st = obj["status"]
        assert st["phase"] == "Succeeded", st.get("message")
        assert st["verdict"] in ("Ship", "Monitor", "ABTest", "Block")
        arc = next(t for t in st["tasks"] if t["task"] == "arc_challenge")
        assert arc["choiceKld"] > 0 and 0 < arc["top1Agreement"] < 1 and arc["n"] == 40
        assert "quantgate_evaluation_choice_kld" in op.metrics()
    finally:
        op.stop()
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
