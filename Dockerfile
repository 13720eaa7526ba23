# NeuroStrat BIDS App container.
#   docker build --build-arg VERSION=$(cat version) -t neurostrat/neurostrat:$(cat version) .
#   docker run --rm -v /data/bids:/bids:ro -v /data/out:/out neurostrat/neurostrat:$(cat version) \
#       /bids /out participant
# GPU build: --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126
# Behind an intercepting proxy: --build-arg PIP_CERT=/path/inside/build/ca.crt with the bundle
# mounted or copied into the build context (pip then trusts it).
FROM python:3.11-slim-bookworm

ARG VERSION=unknown
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_CERT=
LABEL org.opencontainers.image.title="NeuroStrat" \
      org.opencontainers.image.description="Patient stratification from structural brain MRI (BIDS App)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/neurostrat/neurostrat"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLBACKEND=Agg \
    NIPYPE_NO_ET=1 \
    NEUROSTRAT_CONTAINER=docker

# Compilers for pyradiomics' C extension, node for the BIDS validator; removed after use.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc g++ nodejs npm \
 && npm install -g bids-validator@1.15.0 \
 && npm cache clean --force \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/neurostrat
COPY requirements-build.txt requirements.lock requirements-nodeps.txt ./
RUN pip install ${PIP_CERT:+--cert "$PIP_CERT"} -r requirements-build.txt \
 && pip install ${PIP_CERT:+--cert "$PIP_CERT"} torch==2.13.0 --index-url "$TORCH_INDEX_URL" \
 && pip install ${PIP_CERT:+--cert "$PIP_CERT"} --no-build-isolation pyradiomics==3.0.1 \
 && pip install ${PIP_CERT:+--cert "$PIP_CERT"} -r requirements.lock \
 && pip install ${PIP_CERT:+--cert "$PIP_CERT"} --no-deps -r requirements-nodeps.txt \
 && apt-get purge -y gcc g++ && apt-get autoremove -y

COPY version pyproject.toml README.md run.py ./
COPY bids_app ./bids_app
RUN pip install --no-deps --no-build-isolation . \
 && test "$(python run.py --version)" = "$(cat version)"

RUN useradd --create-home --uid 1000 neurostrat
USER neurostrat
ENV HOME=/home/neurostrat
WORKDIR /home/neurostrat
ENTRYPOINT ["python", "/opt/neurostrat/run.py"]
