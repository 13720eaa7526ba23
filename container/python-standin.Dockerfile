# A stand-in for python:3.11-slim-bookworm where no registry can be reached (CI here): Debian
# bookworm's Python 3.11 with its headers, pip and venv, `python`/`pip` on /usr/local/bin as in
# the official image, and
# about as small. Built by container/podman-setup.sh from a debootstrap root file system.
FROM localhost/debian-base:bookworm
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-dev python3-pip python3-venv ca-certificates \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/* /usr/share/doc/* /usr/share/man/* \
      /usr/share/locale/* /usr/lib/python3*/EXTERNALLY-MANAGED \
      /usr/lib/python3.11/config-3.11-*/libpython3.11*.a \
 && ln -s /usr/bin/python3 /usr/local/bin/python \
 && ln -s /usr/bin/python3 /usr/local/bin/python3.11 \
 && ln -s /usr/bin/pip3 /usr/local/bin/pip
