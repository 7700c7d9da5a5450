# The ONNX model server (models/serve), built FROM the suite's own Debian base image.
# Build context: the repository root (the model server's manifest is /suite.yaml); the root
# .dockerignore keeps everything but models/ and this directory's lockfile out of the context.
# Dependencies come before the code so a code-only change reuses the dependency layers.
# The base image trusts the build host's CA bundle (tasks/images/base.py): pip just works.
ARG BASE_IMAGE=localhost/suite-base:bookworm
FROM ${BASE_IMAGE}

ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

RUN python3 -m venv /opt/venv \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /app app

COPY tasks/images/model-server.lock /opt/venv/requirements.lock
RUN pip install --no-cache-dir --disable-pip-version-check -r /opt/venv/requirements.lock

WORKDIR /app
COPY models/ /app/models/

USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["python", "-m", "models.serve"]
