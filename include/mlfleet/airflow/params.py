"""Trigger-form params: the JSON schemas Airflow's "Trigger DAG" form is generated from.

Every DAG parse builds them (the DAG processor's loop and every task process), so only cheap
things happen here: a glob of specs/ with each file's first line, and pydantic's JSON schema of
the four spec fields the overrides set (~4 ms in all, measured; the whole spec's schema alone costs
~10 ms). Bounds and descriptions come from the spec model, so the form and the spec cannot disagree.
"""

from __future__ import annotations

from typing import Annotated, Any

from airflow.sdk import Param

from mlfleet.config import PROJECT_ROOT
from mlfleet.spec import ExperimentSpec
from mlfleet.spec.model import Budget, Search

DEFAULT_SPEC_FILE = "specs/churn-baseline.yaml"
ISO_DATE: dict[str, Any] = {"type": ["null", "string"], "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"}

# The form's sections, in the order they are first used.
SECTION_SPEC = "What to sweep"
SECTION_OVERRIDES = "Overrides (empty: the spec's own value)"

BACKEND_LABELS = {
    None: "the spec's backend, else MLFLEET_BACKEND",
    "local": "local: processes on the Airflow worker",
    "sagemaker": "sagemaker: one SageMaker training job per batch",
    "kubernetes": "kubernetes: one pod per batch",
}


def spec_files() -> list[str]:
    """The project's spec files, as paths relative to the project root (`specs/iris-quick.yaml`): the
    only files a run may name (`mlfleet.spec.loading.project_spec_files`; prepare checks again)."""
    from mlfleet.spec.loading import project_spec_files

    return list(project_spec_files(PROJECT_ROOT))


def _spec_file_label(relative: str) -> str:
    """`iris-quick: A one-minute sweep on ...`: the file's name and its first line when that is a comment."""
    path = PROJECT_ROOT / relative
    with path.open(encoding="utf-8") as f:
        first = f.readline().strip()
    return f"{path.stem}: {first.lstrip('#').strip()}" if first.startswith("#") else path.stem


def spec_file_param(default: str = DEFAULT_SPEC_FILE) -> Param:
    """A choice among specs/*.yaml, listed anew at every parse (a new spec file shows up by itself)."""
    files = spec_files()
    return Param(
        default,
        type="string",
        enum=files,
        values_display={f: _spec_file_label(f) for f in files},
        title="Spec file",
        description="The experiment spec to sweep, from the project's specs/ folder. A pasted spec below "
                    "wins over it.",
        section=SECTION_SPEC,
    )


def nesting_limit(depth: int) -> dict[str, Any]:
    """JSON Schema keywords refusing an object nested more than `depth` collections deep, at trigger.

    The API answers such a conf with HTTP 400 naming the param. Without this a conf nested ~200
    levels deep is stored, and no task can start: Airflow's task runner cannot decode the run's context
    (pydantic's JSON recursion limit). It fails with a retry and nothing in the task log, before
    prepare's own depth check (mlfleet.spec.loading) can run. The `$defs` chain keeps the schema
    linear in `depth`."""
    scalar = ["string", "number", "integer", "boolean", "null"]
    defs: dict[str, Any] = {"depth0": {"type": scalar}}
    for level in range(1, depth):
        inner = {"$ref": f"#/$defs/depth{level - 1}"}
        defs[f"depth{level}"] = {"type": [*scalar, "array", "object"], "items": inner, "additionalProperties": inner}
    return {"$defs": defs, "additionalProperties": {"$ref": f"#/$defs/depth{depth - 2}"}}


def spec_param(default: Any = None) -> Param:
    """An optional pasted spec: YAML or JSON text, or an object (REST or CLI conf); never a file's path.

    An object must have the model's required fields; text must be `key: value` lines or JSON (a
    single word or path is refused here, and prepare never opens it as a file); empty (null) means
    "use spec_file". Size and depth are checked by prepare (mlfleet.spec.loading); an object nested
    past the limit is refused here already, at trigger (`nesting_limit`).
    """
    from mlfleet.spec.loading import MAX_SPEC_BYTES, MAX_SPEC_DEPTH

    required = [name for name, field in ExperimentSpec.model_fields.items() if field.is_required()]
    return Param(
        default,
        **nesting_limit(MAX_SPEC_DEPTH),
        type=["null", "string", "object"],
        format="multiline",
        minLength=1,
        maxLength=MAX_SPEC_BYTES,
        pattern=":",
        required=required,
        title="Spec (paste, optional)",
        description="A whole experiment spec as YAML or JSON (see docs/experiment-spec.md); when given it is "
                    "used instead of the spec file. To sweep a file of specs/, choose it as the spec file above.",
        section=SECTION_SPEC,
    )


def _field_json_schema(model: type[Any], name: str) -> dict[str, Any]:
    """pydantic's JSON schema of one model field (what `model_json_schema()` has for it, less the title)."""
    from pydantic import TypeAdapter

    info = model.model_fields[name]
    field_type: Any = Annotated[info.annotation, info]  # a type built at run time
    return TypeAdapter(field_type).json_schema()


def optional_form_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A field's schema as the form reads it, with null allowed (an empty field keeps the spec's value).

    Airflow's form picks its widget from `type` and `enum`, not from `anyOf`, so `anyOf: [X, null]`
    becomes X's keywords with `type: [null, X]`; an enum gets null as its first choice.
    """
    members = schema.get("anyOf", [schema])
    flat: dict[str, Any] = {"type": ["null"]}
    for member in members:
        if member.get("type", "null") != "null":
            flat["type"].append(member["type"])
            flat.update({k: v for k, v in member.items() if k not in ("type", "default", "title", "description")})
    if "enum" in flat:
        flat["enum"] = [None, *flat["enum"]]
    return flat


def override_param(model: type[Any], name: str, *, field: str, title: str, note: str = "",
                   values_display: dict[Any, str] | None = None) -> Param:
    """An optional override of spec field `field` (`model.name`), its bounds and description from the model."""
    schema = _field_json_schema(model, name)
    extra: dict[str, Any] = {"values_display": values_display} if values_display else {}
    return Param(
        None,
        title=title,
        description=f"{field}: {schema.get('description', '')}{note} Empty: the spec's own.",
        section=SECTION_OVERRIDES,
        **optional_form_schema(schema),
        **extra,
    )


def experiment_sweep_params() -> dict[str, Param]:
    """experiment_sweep's form: which spec (a file, or pasted), then the overrides users reach for."""
    return {
        "spec_file": spec_file_param(),
        "spec": spec_param(),
        "backend": override_param(ExperimentSpec, "backend", field="backend", title="Backend",
                                  values_display=BACKEND_LABELS),
        "n_trials": override_param(Search, "n_trials", field="search.n_trials", title="Trials (random, bayes)",
                                   note=" Refused for a grid sweep. Each trial is a distinct configuration: a "
                                        "space that holds fewer runs every one of them, and the prepare task's "
                                        "log says how many trials will run."),
        "max_parallel": override_param(Budget, "max_parallel", field="budget.max_parallel",
                                       title="Batches at the same time"),
        "timeout_minutes": override_param(Budget, "timeout_minutes", field="budget.timeout_minutes",
                                          title="Batch timeout (minutes)"),
    }


def retrain_params() -> dict[str, Param]:
    """retrain's form; drift_monitor triggers it with the same keys (and `champion_version`, for its run id)."""
    name = _field_json_schema(ExperimentSpec, "name")  # models are registered under their experiment's name
    return {
        "model": Param(
            "churn-baseline",
            type="string",
            minLength=1,
            maxLength=name["maxLength"],
            pattern=name["pattern"],
            title="Registered model",
            description="The MLflow registered model to retrain (an experiment's name); its champion's spec "
                        "becomes a bayes search warm-started from the champion's study.",
        ),
        "drifted_features": Param(
            [],
            type=["null", "array"],
            items={"type": "string"},
            uniqueItems=True,
            title="Drifted features",
            description="The features the drift check flagged, one per line; recorded with the retrain.",
        ),
        "drift_report": Param(
            None,
            type=["null", "string"],
            title="Drift report",
            description="The path of the drift report behind this run, if any; recorded with the retrain.",
        ),
    }


def date_param(*, title: str | None = None, description: str | None = None) -> Param:
    """An optional YYYY-MM-DD day with the form's date picker (feature_pipeline's backfill bounds)."""
    labels: dict[str, Any] = {"title": title} if title else {}
    return Param(None, description=description, **labels, **ISO_DATE)


def feature_pipeline_params() -> dict[str, Param]:
    """feature_pipeline's backfill bounds; both empty: the run's data interval."""
    return {
        "start": date_param(title="First day", description="Backfill from this day (inclusive). Empty: the run's "
                                                           "data interval."),
        "end": date_param(title="Last day", description="Backfill through this day (inclusive). Empty: the last "
                                                        "day of the run's data interval."),
    }
