# XNAT Container Service image for xnat-resource-survey.
# Build with container/build.sh, which passes COMMANDS (the org.nrg.commands label) generated from
# command.json; by hand:
#   docker build --build-arg COMMANDS="$(python3 container/label.py)" -t xnat-resource-survey:0.1.0 .
# A build without COMMANDS, or with a COMMANDS that differs from command.json, fails.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ARG COMMANDS=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
COPY . /src
# The label check comes first: it needs nothing but the interpreter.
RUN python3 /src/container/label.py --command-json /src/command.json --check-env COMMANDS
# A C compiler in the build stage only, for the optional C element walker (the survey's hot loop).
# Without one (no package mirror reachable) the build goes on and the image uses the Python walker.
RUN /src/container/build-deps.sh
RUN python3 -m venv /opt/xnat-resource-survey \
 && /opt/xnat-resource-survey/bin/python -m pip install --no-cache-dir /src \
 && /opt/xnat-resource-survey/bin/python -m pip uninstall -y -q pip
# Compile the report schemas and HTML templates once, here, so every container starts with them cached
# (the run doubles as a smoke test of the installed package).
RUN export XNAT_RESOURCE_SURVEY_CACHE=/opt/xnat-resource-survey/cache \
 && /opt/xnat-resource-survey/bin/xnat-resource-survey demo --output /tmp/warm-up --log-format json >/dev/null \
 && /opt/xnat-resource-survey/bin/xnat-resource-survey mitigate /tmp/warm-up/archive --dry-run \
      --report /tmp/warm-up/survey-report.json --output /tmp/warm-up/mitigation --log-format json >/dev/null \
 && rm -rf /tmp/warm-up \
 && chmod -R a+rX,go-w /opt/xnat-resource-survey/cache

FROM ${BASE_IMAGE}
ARG COMMANDS=""
COPY --from=build /opt/xnat-resource-survey /opt/xnat-resource-survey
COPY container/entrypoint.sh /usr/local/bin/xnat-resource-survey-entrypoint
# /input and /output are XNAT's mount points; /output is writable by whatever user XNAT runs the
# container as (root, or the Container Service's configured container user).
RUN chmod 0755 /usr/local/bin/xnat-resource-survey-entrypoint \
 && mkdir -p /input /output \
 && chmod 0755 /input \
 && chmod 1777 /output
ENV XNAT_RESOURCE_SURVEY_CACHE=/opt/xnat-resource-survey/cache \
    PATH=/opt/xnat-resource-survey/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
LABEL org.nrg.commands="${COMMANDS}" \
      org.opencontainers.image.title="xnat-resource-survey" \
      org.opencontainers.image.description="Survey and mitigate badly named and duplicated DICOM files in XNAT"
ENTRYPOINT ["/usr/local/bin/xnat-resource-survey-entrypoint"]
CMD ["xnat-resource-survey", "--help"]
