# NeuroStrat BIDS App image (docs/usage/container.md). Build:
#   docker build --build-arg VERSION=$(cat version) -t neurostrat/neurostrat:$(cat version) .
# Run as your own user, with the work folder mounted so that a second run resumes:
#   docker run --rm --user $(id -u):$(id -g) -v $PWD/bids:/bids:ro -v $PWD/out:/out \
#       -v $PWD/work:/work neurostrat/neurostrat:$(cat version) /bids /out participant -w /work
#
# Build arguments:
#   VERSION          the version label (`cat version`).
#   TORCH_PIP_ARGS   where pip finds torch 2.13.0; the default is PyTorch's CPU index. GPU image:
#                    --build-arg TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cu126"
#   BASE_IMAGE       the Python 3.11 base of both stages (default python:3.11-slim-bookworm).
# Behind an intercepting HTTPS proxy, give its CA bundle as a build secret; pip and the validator
# download trust it, and it is never written into a layer:
#   docker buildx build --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt ...
#   podman build --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt ...
# brainchop's MeshNet weights (--skull-strip mindgrab, --segmentation meshnet) are baked in from
# container/models/ when that folder holds them (container/models/README.md says how).
ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---- build stage: compilers, downloads and the virtual environment -------------------------
FROM ${BASE_IMAGE} AS build

ARG TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    VIRTUAL_ENV=/opt/neurostrat/venv \
    PATH=/opt/neurostrat/venv/bin:$PATH

# gcc/g++ build pyradiomics' C extension, binutils strips torch's libraries (-90 MB of symbols;
# the libraries that auditwheel patched break when stripped); they stay in this stage.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc g++ binutils \
 && rm -rf /var/lib/apt/lists/*

# The node BIDS validator 1.15.0: its published tarball carries a self-contained bundle
# (dist/commonjs), so neither npm nor the 580 packages it declares are needed at run time.
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export SSL_CERT_FILE=/run/secrets/ca; fi \
 && python -c "import urllib.request as u; u.urlretrieve('https://registry.npmjs.org/bids-validator/-/bids-validator-1.15.0.tgz', '/tmp/bids-validator.tgz')" \
 && echo "6df1b2aa1df305fdfbea90cd9427b4fe3b8613310163fb12c627410396078f60  /tmp/bids-validator.tgz" | sha256sum -c - \
 && mkdir -p /opt/neurostrat/bids-validator \
 && tar -xzf /tmp/bids-validator.tgz -C /opt/neurostrat/bids-validator --strip-components=1 \
      package/package.json package/bin package/dist/commonjs \
 && rm -f /tmp/bids-validator.tgz /opt/neurostrat/bids-validator/dist/commonjs/*.map

# Order matters: torch before what depends on it; pyradiomics built against the pinned numpy.
COPY requirements-build.txt requirements.lock requirements-nodeps.txt /tmp/requirements/
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && python -m venv "$VIRTUAL_ENV" \
 && cd /tmp/requirements \
 && pip install -r requirements-build.txt \
 && pip install ${TORCH_PIP_ARGS} torch==2.13.0 \
 && pip install --no-build-isolation pyradiomics==3.0.1 \
 && pip install -r requirements.lock \
 && pip install --no-deps -r requirements-nodeps.txt

COPY version pyproject.toml README.md run.py /tmp/neurostrat/
COPY bids_app /tmp/neurostrat/bids_app
RUN pip install --no-deps --no-build-isolation /tmp/neurostrat \
 && pip uninstall -y -q pip wheel versioneer \
 && find "$VIRTUAL_ENV" -depth -type d -name tests -path "*/site-packages/*" -exec rm -rf {} + \
 && rm -rf "$VIRTUAL_ENV"/lib/python3.11/site-packages/torch/include \
 && strip --strip-unneeded "$VIRTUAL_ENV"/lib/python3.11/site-packages/torch/lib/libtorch*.so \
 && python -c "import torch, numpy, scipy, SimpleITK, ants, radiomics, sklearn, nipype, bids"

COPY container/models /opt/neurostrat/models
RUN python -m bids_app.cli.models /opt/neurostrat/models

# ---- final stage: the runtime only ----------------------------------------------------------
FROM ${BASE_IMAGE}

ARG VERSION=unknown
LABEL org.opencontainers.image.title="NeuroStrat" \
      org.opencontainers.image.description="Patient stratification from structural brain MRI (BIDS App)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/neurostrat/neurostrat" \
      org.opencontainers.image.documentation="https://github.com/neurostrat/neurostrat#readme" \
      org.bids-apps.analysis-levels="participant group" \
      org.bids-apps.bids-version="1.10.0"

# node runs the validator bundle; nothing else is installed.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs \
 && rm -rf /var/lib/apt/lists/*

COPY --from=build /opt/neurostrat /opt/neurostrat
RUN ln -s /opt/neurostrat/bids-validator/bin/bids-validator /usr/local/bin/bids-validator \
 && useradd --no-create-home --home-dir /tmp --uid 1000 neurostrat

# Any uid, no HOME, a read-only root: the default work folder (./work) and every cache go to
# /tmp; user site-packages of a host HOME (Singularity mounts it) are never imported.
ENV PATH=/opt/neurostrat/venv/bin:$PATH \
    PYTHONNOUSERSITE=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLBACKEND=Agg \
    MPLCONFIGDIR=/tmp/matplotlib \
    NIPYPE_NO_ET=1 \
    NEUROSTRAT_CONTAINER=docker
RUN test "$(neurostrat --version)" = "${VERSION}" || [ "${VERSION}" = unknown ] \
 && bids-validator --version

USER 1000:1000
WORKDIR /tmp
ENTRYPOINT ["neurostrat"]
