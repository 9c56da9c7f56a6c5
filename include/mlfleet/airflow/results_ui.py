"""The results UI inside Airflow: its app behind Airflow's auth manager, and where it shows up.

Airflow imports plugin modules in every process (task processes too, for macros), so the plugin
holds a `LazyResultsApp`: an ASGI app that builds the real one, with FastAPI, Jinja and Airflow's
security module, on its first request, which only ever reaches the api-server.
"""

from __future__ import annotations

from typing import Any

URL_PREFIX = "/mlfleet"

# A top-level nav entry, and a tab on every DAG run (a run without results says so). Relative
# hrefs: Airflow resolves them against its base URL, so a deployment behind a path prefix works.
EXTERNAL_VIEWS: list[dict[str, Any]] = [
    {"name": "Experiments", "href": "mlfleet/experiments", "destination": "nav", "nav_top_level": True,
     "url_route": "mlfleet-experiments"},
    {"name": "Results", "href": "mlfleet/runs/{DAG_ID}/{RUN_ID}", "destination": "dag_run",
     "url_route": "mlfleet-results"},
]


def readable_dags(user: Any) -> set[str]:
    """The DAG ids this user may read, as Airflow's configured auth manager decides."""
    from airflow.api_fastapi.app import get_auth_manager

    return set(get_auth_manager().get_authorized_dag_ids(user=user, method="GET"))


def build_app() -> Any:
    """The results app with Airflow's own user dependency (JWT cookie or bearer token; 401 without)."""
    from airflow.api_fastapi.core_api.security import get_user

    from mlfleet.ui.app import Access, create_app

    return create_app(Access(user=get_user, readable_dags=readable_dags))


class LazyResultsApp:
    """ASGI app that builds the results app on first use (see the module docstring)."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            self._app = build_app()
        await self._app(scope, receive, send)

    def __repr__(self) -> str:  # Airflow's /plugins endpoint lists the app by its repr
        return "mlfleet.airflow.results_ui.LazyResultsApp"
