# hypersweep: the server and the worker in one image (CPU PyTorch).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# PyTorch first, from its CPU-only index, so nothing later pulls the CUDA build.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "$TORCH_INDEX_URL" torch==2.13.0

WORKDIR /app
COPY pyproject.toml README.md ./
COPY service service
COPY worker worker
COPY trainer trainer
COPY migrations migrations
COPY examples examples
RUN pip install . && useradd --create-home --uid 1000 hypersweep

USER hypersweep
WORKDIR /home/hypersweep
EXPOSE 8000
CMD ["hypersweep", "serve", "--host", "0.0.0.0", "--port", "8000"]
