"""The runner's prepared datasets cache: spec.datasets or the chart default (pure functions).

The cache (a PersistentVolumeClaim or an OCI image volume) is mounted read-only at MOUNT and
passed as `quantgate run --datasets`, which reads it with the Hugging Face Hub offline.
"""

from __future__ import annotations

from quantgate.api.v1alpha1 import DatasetsSource, ModelEvaluationSpec
from quantgate.k8s.settings import Settings

MOUNT = "/var/lib/quantgate/datasets"
VOLUME = "datasets"


def effective(spec: ModelEvaluationSpec, settings: Settings) -> DatasetsSource | None:
    if spec.datasets is not None:
        return spec.datasets
    if settings.datasets_pvc:
        return DatasetsSource(pvc=settings.datasets_pvc, sub_path=settings.datasets_sub_path or None)
    if settings.datasets_image:
        return DatasetsSource(image=settings.datasets_image, sub_path=settings.datasets_sub_path or None)
    return None


def runner_args(spec: ModelEvaluationSpec, settings: Settings) -> list[str]:
    source = effective(spec, settings)
    if source is None or spec.effective_suite in ("local", "local-full") or spec.local_data:
        return []  # the local suite's data ships in the image; local-full's is generated in the Job
    return ["--datasets", MOUNT]


def volume(spec: ModelEvaluationSpec, settings: Settings) -> dict | None:
    source = effective(spec, settings)
    if source is None or not runner_args(spec, settings):
        return None
    if source.pvc:
        return {"name": VOLUME, "persistentVolumeClaim": {"claimName": source.pvc, "readOnly": True}}
    return {"name": VOLUME, "image": {"reference": source.image, "pullPolicy": "IfNotPresent"}}


def mount(spec: ModelEvaluationSpec, settings: Settings) -> dict | None:
    source = effective(spec, settings)
    if volume(spec, settings) is None:
        return None
    out = {"name": VOLUME, "mountPath": MOUNT, "readOnly": True}
    if source.sub_path:
        out["subPath"] = source.sub_path
    return out
