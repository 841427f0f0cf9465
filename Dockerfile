# hypersweep in two images from one file:
#   server (the default target): the API server and the dashboard; no PyTorch.
#   worker: the pull loop and the built-in trainer, with CPU PyTorch.
#   docker build -t hypersweep-server .            docker build --target worker -t hypersweep-worker .

# The source, as the package needs it: hypersweep/ holds links to service/, worker/,
# trainer/ and migrations/ (COPY keeps a link inside a copied folder as a link), so those
# folders come along next to it.
FROM scratch AS source
COPY pyproject.toml README.md /app/
COPY hypersweep /app/hypersweep
COPY service /app/service
COPY worker /app/worker
COPY trainer /app/trainer
COPY migrations /app/migrations
COPY examples /app/examples

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 1000 hypersweep
WORKDIR /app

FROM base AS worker
# PyTorch first, from its CPU-only index, so that the worker extra does not pull the CUDA
# build (and this layer survives changes to the source).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "$TORCH_INDEX_URL" torch==2.13.0
COPY --from=source /app /app
RUN pip install '.[worker]'
USER hypersweep
WORKDIR /home/hypersweep
CMD ["hypersweep", "worker"]

# Last, so that a plain `docker build` makes the server.
FROM base AS server
COPY --from=source /app /app
RUN pip install .
USER hypersweep
WORKDIR /home/hypersweep
EXPOSE 8000
CMD ["hypersweep", "serve", "--host", "0.0.0.0", "--port", "8000"]
