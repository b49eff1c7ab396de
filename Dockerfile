# The socflow image used by docker-compose.yml (api, workers, migrations, sweeper).
# The `model` extra (torch, transformers) is only needed by model-holding workers; build it in with
#   docker build --build-arg EXTRAS=model,dev -t socflow:gpu .
FROM python:3.11-slim
ARG EXTRAS=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY socflow ./socflow
COPY tools ./tools
COPY workers ./workers
COPY workflows ./workflows
COPY migrations ./migrations
RUN grep -v '^torch==' constraints.txt > /tmp/constraints.txt \
 && pip install --no-cache-dir -c /tmp/constraints.txt ".${EXTRAS:+[$EXTRAS]}"
RUN useradd --create-home socflow
USER socflow
EXPOSE 8000
CMD ["socflow", "serve", "--host", "0.0.0.0"]
