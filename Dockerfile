# syntax=docker/dockerfile:1
# The consumer's image: `python -m consumer run`, one member of the consumer group.
#
#   docker build -t elastic-rules-consumer:0.1.0 .
#   docker run --rm --read-only --tmpfs /tmp -e KAFKA_BOOTSTRAP_SERVERS=broker:9092 \
#     elastic-rules-consumer:0.1.0
#
# Stage 1 builds the package's wheel and installs it with its dependencies into a virtual
# environment at /opt/consumer (confluent-kafka, fastavro and friends come as manylinux
# wheels: no compiler is needed). Stage 2 copies only that environment onto a clean slim
# Python: no pip, no build tools, no source tree. It runs as uid/gid 10001 and needs no
# writable path but /tmp (mount a tmpfs or an emptyDir there).

ARG PYTHON_VERSION=3.11
ARG BASE_IMAGE=python:${PYTHON_VERSION}-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Only what the wheel is built from (.dockerignore keeps the rest out of the context).
# /opt/consumer/builtin-rules: a fixed path to the built-in rules (the chart's
# rules.builtinPath), checked by loading them.
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY consumer ./consumer
RUN python -m pip wheel --no-deps --wheel-dir /dist . \
 && python -m venv /opt/consumer \
 && /opt/consumer/bin/python -m pip install /dist/*.whl \
 && /opt/consumer/bin/python -m pip uninstall --yes pip setuptools \
 && /opt/consumer/bin/python -m compileall -q /opt/consumer/lib \
 && ln -s "$(/opt/consumer/bin/python -c 'from consumer.rules import builtin_rules_path; print(builtin_rules_path())')" \
      /opt/consumer/builtin-rules \
 && /opt/consumer/bin/python -m consumer check-rules /opt/consumer/builtin-rules

FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="elastic-rules-consumer" \
      org.opencontainers.image.description="Streaming detection engine: Elastic Security KQL query rules over Kafka endpoint events, alerts to Kafka exactly once" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"

# The base image's own pip and setuptools go too: nothing installs at run time.
RUN python -m pip uninstall --yes --quiet pip setuptools wheel 2>/dev/null || true \
 && groupadd --system --gid 10001 consumer \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin consumer

COPY --from=build /opt/consumer /opt/consumer

ENV PATH=/opt/consumer/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp

# A numeric user, so Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
USER 10001:10001
WORKDIR /tmp
# /metrics, /healthz, /readyz (CONSUMER_METRICS_PORT).
EXPOSE 9464
# SIGTERM: finish the batch, commit, leave the group, exit 0 (within about 30 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/consumer/bin/python", "-m", "consumer"]
CMD ["run"]
