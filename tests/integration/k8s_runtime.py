"""A stand-in for the kubelet: run a pod manifest's main container here, as the cluster would.

No Kubernetes API server can run on these machines, so KubernetesPodOperator's create/watch is
not exercised; what is exercised is the pod it builds (`build_pod_request_obj`, the same object
it would POST): this runs exactly that container's command, args and env, with two container
paths mapped to directories (/opt/ml, the container's own working tree, and /airflow/xcom, KPO's
XCom sidecar volume), plus what the cluster injects (AWS credentials and endpoint, as IRSA
would). It returns what KPO would read from the sidecar.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

XCOM_MOUNT = "/airflow/xcom"


def run_pod(manifest: dict[str, Any], *, work: Path, cluster_env: dict[str, str]) -> dict[str, Any]:
    containers = {c["name"]: c for c in manifest["spec"]["containers"]}
    base = containers["base"]
    mounts = {m["mountPath"] for m in base.get("volumeMounts") or []}
    if XCOM_MOUNT not in mounts or "airflow-xcom-sidecar" not in containers:
        raise AssertionError("pod has no XCom sidecar volume: KPO could not read its result")
    command = [*base["command"], *base["args"]]
    if command[0] == "python":
        command[0] = sys.executable  # the image's interpreter is this venv's
    env = {e["name"]: e["value"] for e in base.get("env") or []}
    root, xcom = work / "opt-ml", work / "airflow-xcom"
    xcom.mkdir(parents=True, exist_ok=True)
    process_env = {
        "PATH": os.environ["PATH"], "HOME": str(work),
        **{k: v for k, v in os.environ.items() if k in ("PYTHONPATH", "VIRTUAL_ENV")},
        **cluster_env, **env,
        # container paths mapped to directories (in the pod: /opt/ml and the /airflow/xcom volume)
        "MLFLEET_SM_ROOT": str(root), "MLFLEET_XCOM_FILE": str(xcom / "return.json"),
    }
    result = subprocess.run(command, env=process_env, capture_output=True, text=True,
                            timeout=manifest["spec"].get("activeDeadlineSeconds"))
    if result.returncode != 0:
        raise RuntimeError(f"pod {manifest['metadata']['name']} failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return json.loads((xcom / "return.json").read_text())
