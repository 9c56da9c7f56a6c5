"""Connection arguments for `mlfleet up`'s SQLite metadata DB (`[database] sql_alchemy_connect_args`).

SQLite has one writer at a time; a connection that finds the file locked waits `timeout` seconds
and then fails. Python's default is 5 s, and with a few task processes starting at once beside the
scheduler a write (the API server's audit-log row of a trigger, a task's heartbeat) waited longer
than that and the REST call failed with HTTP 500 "Database error" (2 cores, 2026-12-07). 30 s
turns such a wait into a slow answer instead of a failed trigger. PostgreSQL deployments do not
use this.
"""

CONNECT_ARGS = {"timeout": 30}
