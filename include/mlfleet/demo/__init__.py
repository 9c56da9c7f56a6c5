"""The demo: synthetic purchase events and the whole loop run through real Airflow runs."""
