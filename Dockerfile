# hypersweep in two images from one file:
#   server (the default target): the API server and the dashboard; no PyTorch.
#   worker: the pull loop and the built-in trainer, with CPU PyTorch.
#   docker build -t hypersweep-server .            docker build --target worker -t hypersweep-worker .
# A worker with CUDA PyTorch, for GPU nodes (any index of PyTorch's wheels works):
#   docker build --target worker --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 \
#       -t hypersweep-worker-cuda .
#
# Each image installs into a virtual environment in a build stage and copies only that
# environment into a fresh slim image: no source tree, no build leftovers, and a non-root
# user (uid 1000) that owns nothing it runs.

ARG PYTHON_IMAGE=python:3.11-slim

# The source, as the package needs it: hypersweep/ holds links to service/, worker/,
# trainer/ and migrations/ (COPY keeps a link inside a copied folder as a link), so those
# folders come along next to it.
FROM scratch AS source
COPY pyproject.toml README.md /src/
COPY hypersweep /src/hypersweep
COPY service /src/service
COPY worker /src/worker
COPY trainer /src/trainer
COPY migrations /src/migrations
COPY examples /src/examples

FROM ${PYTHON_IMAGE} AS build-base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/hypersweep
ENV PATH=/opt/hypersweep/bin:$PATH

FROM build-base AS build-server
COPY --from=source /src /src
RUN pip install --no-cache-dir /src

FROM build-base AS build-worker
# PyTorch first, from its CPU-only index by default, so that the worker extra does not pull
# the CUDA build (and this layer survives changes to the source).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0
RUN pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" "torch==$TORCH_VERSION"
COPY --from=source /src /src
RUN pip install --no-cache-dir "/src[worker]"

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/hypersweep/bin:$PATH
RUN useradd --create-home --uid 1000 --user-group hypersweep
WORKDIR /home/hypersweep

FROM runtime AS worker
COPY --from=build-worker /opt/hypersweep /opt/hypersweep
USER 1000:1000
# A worker serves no HTTP; it has no health check of its own (the server sees its leases).
HEALTHCHECK NONE
CMD ["hypersweep", "worker"]

# Last, so that a plain `docker build` makes the server.
FROM runtime AS server
COPY --from=build-server /opt/hypersweep /opt/hypersweep
USER 1000:1000
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["hypersweep", "serve", "--host", "0.0.0.0", "--port", "8000"]
