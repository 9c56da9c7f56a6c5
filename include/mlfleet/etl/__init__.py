"""ETL: the PySpark feature job (runs under spark-submit locally and on EMR Serverless)."""
