# syntax=docker/dockerfile:1
# One image recipe, two targets (untested here: no Docker engine on the build machine, see docs/operations.md):
#   docker build --target service -t aimass:latest .        ingest, clean, infer, fuse, report (no torch)
#   docker build --target train   -t aimass-train:latest .  train (adds CPU torch, onnx, matplotlib)
# The code stays in /app (tasks/ beside it, as shared.settings expects); data lives in /var/lib/aimass.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AIMASS_HTTP_HOST=0.0.0.0 \
    AIMASS_VAR_DIR=/var/lib/aimass
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/aimass aimass
WORKDIR /app
# Dependencies first, from pyproject.toml alone, so a code change does not reinstall them.
COPY pyproject.toml ./
RUN python - <<'PY' > /tmp/requirements.txt
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(project["dependencies"]))
PY
RUN pip install -r /tmp/requirements.txt

FROM base AS train-deps
# CPU wheels of torch (about 200 MB instead of the 2+ GB CUDA build); then the rest of the train extra.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch && \
    python - <<'PY' > /tmp/train-requirements.txt && pip install -r /tmp/train-requirements.txt
import tomllib
extra = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["train"]
print("\n".join(extra))
PY

FROM train-deps AS train
COPY README.md ./
COPY shared ./shared
COPY services ./services
COPY tasks ./tasks
RUN pip install --no-deps --editable . && chown -R aimass /var/lib/aimass
USER aimass
ENTRYPOINT ["aimass"]
CMD ["run", "train"]

# The default target (last stage): `docker build .` gives the slim image.
FROM base AS service
COPY README.md ./
COPY shared ./shared
COPY services ./services
COPY tasks ./tasks
RUN pip install --no-deps --editable . && chown -R aimass /var/lib/aimass
USER aimass
ENTRYPOINT ["aimass"]
CMD ["run", "ingest"]
