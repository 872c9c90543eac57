# One image for the API, the worker and the one-shot migration.
# GPU hosts: the default torch wheel from PyPI for Linux x86_64 is a CUDA build; pick another
# with --build-arg TORCH_SPEC="torch==2.13.0 --index-url <index>".
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /srv/ptychojobs

ARG TORCH_SPEC="torch==2.13.0"
COPY requirements.txt ./
RUN pip install ${TORCH_SPEC} && pip install -r requirements.txt

COPY pyproject.toml README.md ./
COPY app ./app
COPY worker ./worker
# A plain install: the migrations ship inside the package (app/alembic).
RUN pip install --no-deps .

ENV PTYCHOJOBS_DATA_ROOT=/data \
    PTYCHOJOBS_HOST=0.0.0.0 \
    PTYCHOJOBS_PORT=8000
VOLUME ["/data"]
EXPOSE 8000

CMD ["ptychojobs", "serve"]
