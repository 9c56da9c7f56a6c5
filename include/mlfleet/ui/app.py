"""The results app: server-rendered pages over `mlfleet.ui.views`, mounted in Airflow by the plugin.

`create_app(access)` takes who is asking and what they may read as an `Access`, so the app runs
alone under tests and inside Airflow's api-server with Airflow's auth manager
(`mlfleet.airflow.results_ui`). Every route, static files included, depends on `access.user`:
no signed-in user, no page (401). Pages escape everything they render (Jinja autoescape); the
JavaScript only sorts, filters and swaps in fragments the server escaped.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response

from mlfleet.config import Settings, get_settings
from mlfleet.sweep.progress import NotFound
from mlfleet.retraining.verdict import verdict
from mlfleet.ui import views

PREFIX = "/mlfleet"  # where the plugin mounts the app (outside Airflow's reserved prefixes)
HERE = Path(__file__).parent
SWEEP_DAGS = {"experiment_sweep", "retrain"}
DRIFT_DAG = "drift_monitor"
STATIC = {"app.js": HERE / "static" / "app.js", "app.css": HERE / "static" / "app.css"}


@dataclass(frozen=True)
class Access:
    """Who is asking (`user`: a FastAPI dependency that raises 401 for nobody) and which DAGs they
    may read (`readable_dags(user)`). Airflow's auth manager in production, a stand-in in tests."""

    user: Callable[..., Any]
    readable_dags: Callable[[Any], set[str]]
    settings: Callable[[], Settings] = field(default=get_settings)


def _templates() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
    env.filters["num"] = lambda v, digits=4: "" if not isinstance(v, (int, float)) else f"{v:.{digits}g}"
    env.filters["q"] = lambda v: quote(str(v), safe="")
    env.filters["verdict"] = verdict
    return env


def _plotly_js() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.origin:
        raise NotFound("plotly is not installed")
    return Path(spec.origin).parent / "package_data" / "plotly.min.js"


def create_app(access: Access) -> FastAPI:
    app = FastAPI(title="mlfleet results", docs_url=None, redoc_url=None, openapi_url=None)
    templates = _templates()

    def readable(user: Any = Depends(access.user)) -> set[str]:
        return set(access.readable_dags(user))

    def page(request: Request, template: str, status_code: int = 200, **data: Any) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        links = {"app": root, "airflow": root.removesuffix(PREFIX)}
        html = templates.get_template(template).render(links=links, **data)
        return HTMLResponse(html, status_code=status_code)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> HTMLResponse:
        return page(request, "not_found.html", status_code=404, message=str(exc))

    @app.get("/", include_in_schema=False)
    def index(request: Request, _: set[str] = Depends(readable)) -> RedirectResponse:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/experiments", status_code=307)

    @app.get("/static/{name}")
    def static(name: str, _: set[str] = Depends(readable)) -> Response:
        path = _plotly_js() if name == "plotly.min.js" else STATIC.get(name)
        if path is None or not path.is_file():
            raise NotFound(f"no static file {name!r}")
        media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return Response(path.read_bytes(), media_type=media, headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/experiments", response_class=HTMLResponse)
    def experiments(request: Request, dags: set[str] = Depends(readable)) -> HTMLResponse:
        rows = views.experiments(access.settings(), dags & SWEEP_DAGS)
        return page(request, "experiments.html", rows=rows)

    @app.get("/runs/{dag_id}/{run_id:path}")
    def airflow_run(request: Request, dag_id: str, run_id: str, dags: set[str] = Depends(readable)) -> Response:
        """The DAG-run tab: this Airflow run's sweep (a continuation run shows the sweep it continues).

        A sweep of a DAG the user may not read answers as one that does not exist (the same 404
        page), also when the URL names a DAG they may read: a continuation run id names its sweep.
        """
        from mlfleet.sweep.progress import dag_of, find_airflow_run

        from mlfleet.sweep.context import experiments_root

        path = find_airflow_run(experiments_root(access.settings()), dag_id, run_id) if dag_id in dags else None
        if path is None or dag_of(path) != dag_id:
            return page(request, "no_results.html", status_code=404, dag_id=dag_id, run_id=run_id)
        root = request.scope.get("root_path", "")
        return RedirectResponse(f"{root}/experiments/{quote(path.parent.name)}/{quote(path.name)}", status_code=307)

    def sweep(experiment: str, run_id: str, dags: set[str]) -> Path:
        return views.sweep_path(access.settings(), experiment, run_id, dags & SWEEP_DAGS)

    @app.get("/experiments/{experiment}/{run_id}", response_class=HTMLResponse)
    def run(request: Request, experiment: str, run_id: str, fragment: str | None = None,
            dags: set[str] = Depends(readable)) -> HTMLResponse:
        data = views.run(access.settings(), sweep(experiment, run_id, dags))
        return page(request, "run_live.html" if fragment == "live" else "run.html", **data)

    @app.get("/experiments/{experiment}/{run_id}/progress.json")
    def run_progress(experiment: str, run_id: str, dags: set[str] = Depends(readable)) -> JSONResponse:
        from mlfleet.sweep.progress import summary

        head = summary(sweep(experiment, run_id, dags))
        return JSONResponse({"state": head.state, "trials_done": head.trials_done, "trials_total": head.trials_total,
                             "best": head.best})

    @app.get("/experiments/{experiment}/{run_id}/plots.json")
    def run_plots(experiment: str, run_id: str, dags: set[str] = Depends(readable)) -> JSONResponse:
        return JSONResponse(views.plots(access.settings(), sweep(experiment, run_id, dags)))

    @app.get("/experiments/{experiment}/{run_id}/leaderboard.{kind}")
    def download(experiment: str, run_id: str, kind: str, dags: set[str] = Depends(readable)) -> Response:
        from mlfleet.results.leaderboard import to_csv

        board = views.leaderboard(access.settings(), sweep(experiment, run_id, dags))
        disposition = {"Content-Disposition": f'attachment; filename="{experiment}-{run_id}-leaderboard.{kind}"'}
        if kind == "json":
            return Response(json.dumps(board, indent=2, default=str), media_type="application/json", headers=disposition)
        if kind == "csv":
            return PlainTextResponse(to_csv(board), media_type="text/csv", headers=disposition)
        raise NotFound(f"no leaderboard format {kind!r} (csv or json)")

    @app.get("/experiments/{experiment}/{run_id}/trials/{trial_id}", response_class=HTMLResponse)
    def trial(request: Request, experiment: str, run_id: str, trial_id: str,
              dags: set[str] = Depends(readable)) -> HTMLResponse:
        data = views.trial(access.settings(), sweep(experiment, run_id, dags), trial_id)
        return page(request, "trial.html", **data)

    @app.get("/drift", response_class=HTMLResponse)
    def drift(request: Request, dags: set[str] = Depends(readable)) -> HTMLResponse:
        reports = views.drift_reports(access.settings()) if DRIFT_DAG in dags else []
        return page(request, "drift.html", reports=reports)

    @app.get("/drift/{model}/{report}", response_class=HTMLResponse)
    def drift_report(request: Request, model: str, report: str, dags: set[str] = Depends(readable)) -> HTMLResponse:
        if DRIFT_DAG not in dags:
            raise NotFound(f"no drift report {model}/{report}")
        return page(request, "drift_report.html", **views.drift_report(access.settings(), model, report, dags))

    @app.get("/models", response_class=HTMLResponse)
    def models(request: Request, dags: set[str] = Depends(readable)) -> HTMLResponse:
        return page(request, "models.html", models=views.models(access.settings(), dags & SWEEP_DAGS))

    @app.get("/models/{name}", response_class=HTMLResponse)
    def model(request: Request, name: str, dags: set[str] = Depends(readable)) -> HTMLResponse:
        return page(request, "model.html", **views.model_history(access.settings(), name, dags & SWEEP_DAGS))

    return app
