# One image recipe for every Flotilla service: `docker build --build-arg SERVICE=<name> .`
#
# Stages: `build` turns the chassis and its dependencies into wheels and installs them into /opt/venv; it
# knows nothing of the service, so its layer is the same in every image and a registry stores it once.
# `service` installs one distribution (services/<name>, or another directory given as PACKAGE: the dev
# issuer's image takes devtools) into /opt/service, without dependencies: no other service's code and no
# dev tools reach the image. `runtime` is the base image plus those two directories, run as a fixed
# non-root uid.
#
# Behind a TLS-intercepting proxy, pass the proxy's CA as a BuildKit secret; only pip reads it and it never
# lands in a layer:
#   DOCKER_BUILDKIT=1 docker build --secret id=cacert,src=/etc/ssl/certs/ca-certificates.crt ...
# Machines that cannot pull python:3.12-slim build a local base with `make base-image` and pass
# --build-arg BASE_IMAGE=flotilla/base:bookworm (scripts/build-images.sh does this by itself).

ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS build
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# binutils for `strip` only: it never reaches the runtime stage.
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends binutils >/dev/null \
 && rm -rf /var/lib/apt/lists/*
# /opt/venv is what ships, without pip; /opt/pip only builds and installs into it.
RUN python3 -m venv --without-pip /opt/venv && python3 -m venv /opt/pip
# Dependencies first: this layer is rebuilt only when pyproject.toml changes, not on every code change.
# setuptools comes along as a wheel, so the service stage builds without reaching an index.
COPY pyproject.toml ./
RUN python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > /tmp/requirements.txt
RUN --mount=type=secret,id=cacert \
    if [ -s /run/secrets/cacert ]; then export PIP_CERT=/run/secrets/cacert; fi; \
    /opt/pip/bin/pip wheel --quiet --prefer-binary --wheel-dir /wheels -r /tmp/requirements.txt 'setuptools>=77'
COPY README.md ./
COPY flotilla ./flotilla
RUN --mount=type=secret,id=cacert \
    if [ -s /run/secrets/cacert ]; then export PIP_CERT=/run/secrets/cacert; fi; \
    /opt/pip/bin/pip wheel --quiet --no-deps --no-index --find-links /wheels --wheel-dir /wheels . \
 && /opt/pip/bin/pip --python /opt/venv/bin/python install --quiet --no-index --find-links /wheels --no-compile flotilla \
 && find /opt/venv -depth \( -name __pycache__ -o -name '*.pyc' \) -exec rm -rf {} + \
 && rm -f /opt/venv/bin/activate* /opt/venv/bin/Activate.ps1 \
 && find /opt/venv -name '*.so' -not -path '*.libs/*' -exec strip --strip-unneeded {} + \
 && /opt/venv/bin/python -c 'import flotilla.cli'

FROM build AS service
ARG SERVICE
ARG PACKAGE=services/${SERVICE}
COPY ${PACKAGE} /src/package
RUN test -f /src/package/pyproject.toml || { echo "no distribution at ${PACKAGE} (SERVICE=${SERVICE})" >&2; exit 1; }; \
    /opt/pip/bin/pip install --quiet --no-deps --no-index --find-links /wheels --no-compile \
        --target /opt/service /src/package \
 && find /opt/service -depth \( -name __pycache__ -o -name '*.pyc' \) -exec rm -rf {} + \
 && rm -rf /opt/service/bin

# The base without its package manager and what only it uses (apt, perl, debconf: about 25 MB): nothing
# installs packages at run time. dpkg's database stays, so image scanners still see the OS packages.
FROM ${BASE_IMAGE} AS os
RUN dpkg --purge --force-remove-essential --force-depends \
        apt libapt-pkg6.0 perl-base debconf libgnutls30 libp11-kit0 libsystemd0 libudev1 libgcrypt20 libdb5.3 \
        libseccomp2 >/dev/null 2>&1 \
 && rm -rf /var/cache/debconf /usr/share/perl5 /var/log/* \
 && python3 -c 'import ssl, sqlite3, zoneinfo' \
 && install -d -o 65532 -g 65532 -m 0755 /opt/sync

FROM scratch AS runtime
ARG BASE_IMAGE
ARG SERVICE
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/flotilla/flotilla
ARG CREATED=
LABEL org.opencontainers.image.title="flotilla-${SERVICE}" \
      org.opencontainers.image.description="Flotilla service ${SERVICE}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${BASE_IMAGE}" \
      org.flotilla.service="${SERVICE}"
# The only writable path at run time is /tmp (a tmpfs): traces, metrics and HOME all live there.
# /opt/sync (made in `os`, owned by 65532) comes first on PYTHONPATH: modules there shadow the installed
# packages. It is empty in the image and unwritable under the read-only root filesystem; only the charts'
# dev.sync mounts an emptyDir there (seeded with the installed chassis and service) for `skaffold dev`
# file sync. /opt/service holds this image's one service and its entry points (how `flotilla serve`
# finds it). No Python version in the path, so any base image works.
ENV PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin \
    PYTHONPATH=/opt/sync:/opt/service \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    FLOTILLA_SERVICE=${SERVICE} \
    FLOTILLA_SERVICE_VERSION=${VERSION} \
    FLOTILLA_BIND=0.0.0.0:8000 \
    FLOTILLA_TRACE_FILE=/tmp/flotilla/traces.jsonl \
    PROMETHEUS_MULTIPROC_DIR=/tmp/flotilla-metrics
COPY --from=os / /
COPY --from=build /opt/venv /opt/venv
COPY --from=service /opt/service /opt/service
USER 65532:65532
WORKDIR /tmp
EXPOSE 8000
STOPSIGNAL SIGTERM
ENTRYPOINT ["flotilla"]
# `flotilla serve` takes the service name from FLOTILLA_SERVICE when no argument is given (CMD cannot
# expand build arguments).
CMD ["serve"]
