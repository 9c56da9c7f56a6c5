# syntax=docker/dockerfile:1
# Two targets from one file:
#   airflow (default, the last stage): the image Airflow's components run (scheduler, workers, api-server).
#   trial:             the training image SageMaker jobs and Kubernetes pods run; its entrypoint
#                      is mlfleet.training.entrypoint (SageMaker's container contract).
# Build: docker build -t mlfleet-airflow .            docker build --target trial -t mlfleet-trial .

ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS trial
# Only what training needs: no Airflow, no Spark, no Feast (the entrypoint imports none of them).
COPY requirements-trial.txt constraints.txt /opt/mlfleet/
RUN pip install --no-cache-dir -r /opt/mlfleet/requirements-trial.txt -c /opt/mlfleet/constraints.txt \
 && pip install --no-cache-dir torch==2.13.0
COPY pyproject.toml README.md /opt/mlfleet/
COPY include /opt/mlfleet/include
RUN pip install --no-cache-dir --no-deps /opt/mlfleet
# Trials run as an unprivileged user, uid/gid 1000 (the pod's runAsUser, mlfleet.backends.kubernetes):
# /opt/ml, where the entrypoint writes its SageMaker layout, and its home (library caches) are its own.
RUN groupadd --gid 1000 mlfleet \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/mlfleet --shell /usr/sbin/nologin mlfleet \
 && mkdir -p /opt/ml \
 && chown -R 1000:1000 /opt/ml
USER 1000:1000
# SageMaker runs `docker run <image> train`; the entrypoint takes "train" as its command.
ENTRYPOINT ["python", "-m", "mlfleet.training.entrypoint"]
CMD ["train"]


FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION} AS airflow
USER root
# PySpark (local mode / spark-submit) needs a JVM.
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/*
USER airflow
COPY --chown=airflow:0 requirements.txt constraints.txt /opt/mlfleet/
# Pin Airflow itself with the rest so pip never up- or downgrades the base image's Airflow.
RUN pip install --no-cache-dir uv \
 && uv pip install --no-cache -r /opt/mlfleet/requirements.txt -c /opt/mlfleet/constraints.txt \
      "apache-airflow==${AIRFLOW_VERSION}" \
 && pip install --no-cache-dir torch==2.13.0
COPY --chown=airflow:0 pyproject.toml README.md /opt/mlfleet/
COPY --chown=airflow:0 include /opt/mlfleet/include
RUN uv pip install --no-cache --no-deps -e /opt/mlfleet
COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins
# Airflow's local settings, where Airflow looks ($AIRFLOW_HOME/config): with MLFLEET_PRELOAD set, the
# processes it names import the task libraries before forking task processes (docs/deploy.md).
COPY --chown=airflow:0 config/airflow_local_settings.py /opt/airflow/config/airflow_local_settings.py
COPY --chown=airflow:0 feature_repo /opt/mlfleet/feature_repo
COPY --chown=airflow:0 specs /opt/mlfleet/specs
ENV MLFLEET_FEATURE_REPO=/opt/mlfleet/feature_repo \
    MLFLEET_HOME=/opt/airflow/mlfleet \
    MLFLOW_DISABLE_TELEMETRY=true
