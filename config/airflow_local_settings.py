"""mlfleet's Airflow local settings: preload the libraries tasks import in the process that forks them.

Airflow imports this file in every process as `airflow` is imported, from `$AIRFLOW_HOME/config`
(the image puts it there) or from anywhere on `sys.path` (`mlfleet up` adds this folder). Where
``MLFLEET_PRELOAD`` names this process's command (`scheduler` on the LocalExecutor, `celery worker`
on Celery), pandas, scikit-learn, Optuna, MLflow and mlfleet's steps are imported before that
process forks the task processes, which then inherit them (mlfleet.airflow.preload says why).
A deployment with local settings of its own adds the lines below to its file instead.
"""

import os
import sys

# Airflow copies every public name of this module into airflow.settings: none here.
__all__: list[str] = []

if os.environ.get("MLFLEET_PRELOAD"):  # read here, not through Settings: this runs in every Airflow process
    from mlfleet.airflow.preload import preload_for_this_process

    preload_for_this_process(argv=sys.argv, environ=os.environ)
