"""mlfleet: parallel ML experiments and drift-triggered retraining on Apache Airflow 3.

The package is importable without Airflow; heavy libraries load lazily inside the functions
that need them so DAG files and the CLI stay fast to import.
"""

__version__ = "0.1.0"
