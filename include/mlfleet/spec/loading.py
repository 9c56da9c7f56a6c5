"""Turn YAML text, a file or a dict into an `ExperimentSpec`, or a `SpecError` naming the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mlfleet.spec.errors import SpecError
from mlfleet.spec.model import ExperimentSpec


def _field_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
        elif ("[" in str(part) or str(part)[:1].isupper()) and i < len(loc) - 1:
            continue  # a union member's name, not a field (the last part is the user's own key)
        else:
            path += f".{part}" if path else str(part)
    return path


def _from_validation_error(err: ValidationError) -> SpecError:
    first = err.errors(include_url=False)[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    field = _field_path(tuple(first["loc"]))
    if first["type"] == "extra_forbidden":
        return SpecError(field, "unknown field; check its spelling against experiment-spec.md")
    if first["type"] == "missing":
        return SpecError(field, "required field is missing")
    head = message.split(": ", 1)[0] if ": " in message else ""
    # A model-level check puts the field in front of its message ("models: ...", "models[0].params.C: ...").
    if head.startswith("models") or (field and head.startswith(f"{field}.")):
        field, message = message.split(": ", 1)
    if first["type"] == "string_pattern_mismatch" and field == "name":
        message = (f"{first['input']!r} must match [a-z0-9-]+ with a letter or digit at both ends "
                   "(lower-case letters, digits, dashes)")
    return SpecError(field, message)


def parse_spec(data: Any) -> ExperimentSpec:
    """Validate a spec object (a dict from YAML, JSON or the trigger form)."""
    if isinstance(data, ExperimentSpec):
        return data
    if not isinstance(data, dict):
        raise SpecError("spec", f"expected a mapping of fields, got {type(data).__name__}")
    try:
        return ExperimentSpec.model_validate(data)
    except ValidationError as err:
        raise _from_validation_error(err) from None


# A spec is a page of YAML; a megabyte is already a hostile one (huge lists, pasted data).
MAX_SPEC_BYTES = 1_000_000


class _AliasRefused(yaml.YAMLError):
    def __init__(self, mark: Any) -> None:
        super().__init__("YAML aliases are not allowed in specs")
        self.problem_mark, self.problem = mark, "YAML aliases (*name) are not allowed in specs"


class _SpecLoader(yaml.SafeLoader):
    """safe_load without aliases: a few nested aliases ("billion laughs") expand to more values than
    memory holds once anything walks the result, and a spec has no need for them."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.events.AliasEvent):
            raise _AliasRefused(self.peek_event().start_mark)
        return super().compose_node(parent, index)


def load_yaml_text(text: str, *, source: str = "spec") -> dict[str, Any]:
    """Parse YAML safely: a Python tag, an alias or a syntax error is a SpecError, never code execution."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SPEC_BYTES:
        raise SpecError(source, f"larger than {MAX_SPEC_BYTES:,} bytes; a spec is a page of YAML")
    try:
        data = yaml.load(text, Loader=_SpecLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.constructor.ConstructorError as err:
        tag = getattr(err, "problem", "") or str(err)
        raise SpecError(source, f"YAML tag not allowed ({tag.strip()}); specs are plain data") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise SpecError(source, f"YAML does not parse{where}: {problem}") from None
    if not isinstance(data, dict):
        raise SpecError(source, "expected a YAML mapping of spec fields")
    return data


def load_spec_data(source: str | Path | dict[str, Any]) -> dict[str, Any]:
    """The spec's fields as a mapping, not yet validated: from a dict, JSON/YAML text, or a YAML/JSON file.

    What `load_spec` validates; callers that change fields first (trigger-form overrides) start here.
    """
    if isinstance(source, dict):
        return source
    text = str(source)
    stripped = text.lstrip()
    if stripped.startswith("{"):
        if len(text) > MAX_SPEC_BYTES:
            raise SpecError("spec", f"larger than {MAX_SPEC_BYTES:,} bytes; a spec is a page of YAML")
        try:
            return json.loads(text)  # text that starts with { parses to a mapping or not at all
        except json.JSONDecodeError:
            return load_yaml_text(text)
    path = Path(text).expanduser() if "\n" not in text and len(text) < 4096 else None
    if path is None or (not path.is_file() and ": " in text):
        return load_yaml_text(text)
    if not path.is_file():
        raise SpecError("spec", f"file {str(path)!r} does not exist")
    return load_yaml_text(path.read_text(), source=str(path))


def load_spec(source: str | Path | dict[str, Any]) -> ExperimentSpec:
    """Load a spec from a dict, a JSON/YAML string, or a path to a YAML/JSON file."""
    return parse_spec(load_spec_data(source))
