# quantgate: one image for the operator (`quantgate operator`) and its runner Jobs (`quantgate run`).
#
#   docker build -t quantgate:0.1.0 .
#   docker build --build-arg VLLM=true -t quantgate:0.1.0-vllm .   # + lm-eval's in-process vLLM engine (x86_64 GPU nodes)
#
# Dependencies come only from the hash-pinned locks (`make lock` regenerates them from pyproject.toml).
# No HEALTHCHECK: Kubernetes probes the operator's /healthz on its metrics port (see charts/quantgate).
# For reproducible builds pin the base image by digest: --build-arg PYTHON_IMAGE=python:3.11-slim-trixie@sha256:...
# checkov:skip=CKV_DOCKER_2:Kubernetes ignores HEALTHCHECK; the chart probes /healthz and /readyz
# checkov:skip=CKV_DOCKER_7:the base comes from a build argument; pin it by digest with --build-arg PYTHON_IMAGE
ARG PYTHON_IMAGE=python:3.11-slim-trixie

# ---- build: resolve nothing, install the locks into a venv, build and add the quantgate wheel ----
FROM ${PYTHON_IMAGE} AS build
# true: install requirements-vllm.lock (runtime deps + the `vllm` extra) instead of requirements.lock.
ARG VLLM=false
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    APP_VENV=/opt/quantgate \
    BUILD_VENV=/opt/build
WORKDIR /src
COPY requirements.lock requirements-vllm.lock requirements-build.lock ./
# Runtime dependencies exactly as locked: --require-hashes refuses anything unpinned or unhashed, and
# --no-deps resolves nothing (the `pip check` below proves the locked set is complete).
RUN lock=requirements.lock; if [ "$VLLM" = "true" ]; then lock=requirements-vllm.lock; fi; \
    python -m venv "$APP_VENV" && \
    "$APP_VENV/bin/pip" install --require-hashes --no-deps -r "$lock"
COPY pyproject.toml README.md ./
COPY operator/ operator/
# The build backend (setuptools, wheel) lives in its own venv that never reaches the final stage.
# pip itself is removed from the app venv last: the final image installs nothing at run time.
# Development tools stay out of the image: the dev control plane and process kubelet (quantgate.dev),
# the simulator (quantgate.simulate) and the demos (quantgate.demo); `quantgate dev|simulate` then says so.
RUN rm -rf operator/quantgate/dev operator/quantgate/simulate operator/quantgate/demo && \
    python -m venv "$BUILD_VENV" && \
    "$BUILD_VENV/bin/pip" install --require-hashes -r requirements-build.lock && \
    "$BUILD_VENV/bin/pip" wheel --no-deps --no-build-isolation --wheel-dir "$BUILD_VENV/wheels" . && \
    "$APP_VENV/bin/pip" install --no-deps "$BUILD_VENV"/wheels/quantgate-*.whl && \
    "$APP_VENV/bin/pip" check && \
    "$APP_VENV/bin/pip" uninstall --yes pip

# ---- final: the base image, the app venv, a non-root numeric user; no compiler, no pip ----
FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="quantgate" \
      org.opencontainers.image.description="Kubernetes operator that gates promotion of quantized LLMs on lm-eval evidence" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/quantgate/quantgate" \
      org.opencontainers.image.documentation="https://github.com/quantgate/quantgate/blob/main/docs/install.md"
# The base image's own pip/setuptools/wheel are build tools the operator never uses.
RUN python -m pip uninstall --yes pip setuptools wheel && \
    useradd --uid 10001 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin quantgate
COPY --from=build /opt/quantgate /opt/quantgate
# HOME and caches under /tmp: the chart mounts an emptyDir there and keeps the root filesystem read-only.
ENV PATH=/opt/quantgate/bin:$PATH \
    HOME=/tmp \
    HF_HOME=/tmp/huggingface \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["quantgate"]
CMD ["--help"]
