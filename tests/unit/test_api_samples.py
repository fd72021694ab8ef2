"""Every sample in manifests/samples/ is a valid ModelEvaluation for the API models."""

from pathlib import Path

import pytest
import yaml

from quantgate.api.v1alpha1 import ModelEvaluationSpec

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "manifests/samples").glob("*.yaml"))


def _evaluations(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "ModelEvaluation"]


def test_there_are_samples_for_each_documented_case():
    names = {p.stem for p in SAMPLES}
    assert {"endpoint", "inferenceservice", "math-tutoring", "custom-thresholds", "tiny-suite", "gpu-vllm"} <= names


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sample_is_valid(path):
    docs = _evaluations(path)
    assert docs, f"{path.name} holds no ModelEvaluation"
    for doc in docs:
        assert doc["apiVersion"] == "quantgate.io/v1alpha1"
        spec = ModelEvaluationSpec.model_validate(doc["spec"])
        if path.stem == "gpu-vllm":
            assert spec.candidate.vllm and spec.candidate.vllm.tensor_parallel_size == 4
        if doc["metadata"].get("labels", {}).get("quantgate.io/sample-runs-offline") == "true":
            assert spec.suite == "local", "offline samples must use the local suite"
