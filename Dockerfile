# Production image: slim Python, non-root, migrations applied on start (GATEWAY_MIGRATE_ON_START).
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8000 \
    GATEWAY_LOG_FORMAT=json

WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY schema ./schema
COPY resolvers ./resolvers
COPY schema.graphql ./
RUN pip install --no-compile . \
    && useradd --create-home --uid 10001 gateway \
    && mkdir -p /data && chown gateway /data

USER 10001
ENV GATEWAY_DATABASE_URL=sqlite+aiosqlite:////data/gateway.db
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=3).status != 200)"]
CMD ["gateway", "serve"]
