"""The PySpark feature job and its command line; the same script runs on local Spark and on EMR."""

from pathlib import Path

# The script spark-submit runs, shipped unchanged to EMR Serverless.
FEATURE_JOB = Path(__file__).resolve().parent / "feature_job.py"
