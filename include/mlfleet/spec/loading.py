"""Turn a spec into an `ExperimentSpec`, or a `SpecError` naming the field.

Two doors, kept apart on purpose, because a spec comes from two kinds of people:

- a DAG run's conf or trigger form, from whoever may trigger the DAG, read on a worker: the `spec`
  param is a spec, YAML or JSON text or an object (`load_spec_param`), never a path; a file is
  named only by `spec_file`, one of the project's spec files (`load_project_spec`);
- the local user on their own machine (`mlfleet sweep SPEC.yaml`, `mlfleet plan`, the library):
  `load_spec_file`, and `load_spec` / `load_spec_data`, which take a path too.

Either way the size and the nesting depth are checked before the spec is parsed or validated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mlfleet.config import PROJECT_ROOT, Limits
from mlfleet.spec.errors import SpecError
from mlfleet.spec.model import ExperimentSpec

# A spec is a page of YAML; a megabyte is already a hostile one (huge lists, pasted data).
MAX_SPEC_BYTES = 1_000_000
# Mappings and lists inside one another, the spec itself the first: a spec needs about six
# (spec > models > entry > params > range > bounds); far deeper is an attack on the parser's stack.
MAX_SPEC_DEPTH = 20
# Where the project's spec files live (the trigger form's `spec_file` choices), under the project root.
SPECS_FOLDER = "specs"

_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
_TOO_LARGE = f"larger than {MAX_SPEC_BYTES:,} bytes; a spec is a page of YAML"
_TOO_DEEP = f"nested more than {MAX_SPEC_DEPTH} levels deep; a spec nests a few mappings and lists"


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


def _is_field(text: str) -> bool:
    """`budget.timeout_minutes`, `resources.cpu`: a spec field's path (dots between known sections)."""
    return bool(text) and text.split(".")[0].split("[")[0] in ExperimentSpec.model_fields and " " not in text


def _from_validation_error(err: ValidationError) -> SpecError:
    first = err.errors(include_url=False)[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    field = _field_path(tuple(first["loc"]))
    if first["type"] == "extra_forbidden":
        return SpecError(field, "unknown field; check its spelling against experiment-spec.md")
    if first["type"] == "missing":
        return SpecError(field, "required field is missing")
    if first["type"] == "finite_number":
        return SpecError(field, f"{first['input']!r} is not a finite number")
    head = message.split(": ", 1)[0] if ": " in message else ""
    # A model-level check puts the field in front of its message ("models: ...", "models[0].params.C: ...",
    # "budget.timeout_minutes: ..." from the spec's own checks).
    if head.startswith("models") or (field and head.startswith(f"{field}.")) or (not field and _is_field(head)):
        field, message = message.split(": ", 1)
    if first["type"] == "string_pattern_mismatch" and field == "name":
        message = (f"{first['input']!r} must match [a-z0-9-]+ with a letter or digit at both ends "
                   "(lower-case letters, digits, dashes)")
    return SpecError(field, message)


def parse_spec(data: Any, *, limits: Limits | None = None) -> ExperimentSpec:
    """Validate a spec object (a mapping from YAML, JSON or the trigger form), within the deployment's
    limits (`limits`, else MLFLEET_MAX_* read now); its size and depth are checked first."""
    if isinstance(data, ExperimentSpec):
        return data
    if not isinstance(data, dict):
        raise SpecError("spec", f"expected a mapping of fields, got {type(data).__name__}")
    check_spec_object(data)
    context = {"limits": limits if limits is not None else Limits()}  # a bad MLFLEET_MAX_* fails here, as itself
    try:
        return ExperimentSpec.model_validate(data, context=context)
    except ValidationError as err:
        raise _from_validation_error(err) from None


class _AliasRefused(yaml.YAMLError):
    def __init__(self, mark: Any) -> None:
        super().__init__("YAML aliases are not allowed in specs")
        self.problem_mark, self.problem = mark, "YAML aliases (*name) are not allowed in specs"


class _TooDeep(yaml.YAMLError):
    def __init__(self, mark: Any) -> None:
        super().__init__(_TOO_DEEP)
        self.problem_mark, self.problem = mark, _TOO_DEEP


class _SpecLoader(yaml.SafeLoader):
    """safe_load without aliases: a few nested aliases ("billion laughs") expand to more values than
    memory holds once anything walks the result, and a spec has no need for them. Nesting deeper
    than MAX_SPEC_DEPTH is refused as it is read, before the composer's recursion gets there."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.events.AliasEvent):
            raise _AliasRefused(self.peek_event().start_mark)
        if not self.check_event(yaml.events.CollectionStartEvent):
            return super().compose_node(parent, index)
        if self._depth >= MAX_SPEC_DEPTH:
            raise _TooDeep(self.peek_event().start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_yaml_text(text: str, *, source: str = "spec") -> dict[str, Any]:
    """Parse YAML safely: a Python tag, an alias, deep nesting or a syntax error is a SpecError, never
    code execution or a RecursionError; so is a document that is not a mapping."""
    data = _parse_yaml(text, source=source)
    if not isinstance(data, dict):
        raise SpecError(source, "expected a YAML mapping of spec fields")
    return data


def _parse_yaml(text: str, *, source: str) -> Any:
    _check_text_size(text, source)
    try:
        return yaml.load(text, Loader=_SpecLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.constructor.ConstructorError as err:
        tag = getattr(err, "problem", "") or str(err)
        raise SpecError(source, f"YAML tag not allowed ({tag.strip()}); specs are plain data") from None
    except _TooDeep:
        raise SpecError(source, _TOO_DEEP) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise SpecError(source, f"YAML does not parse{where}: {problem}") from None


def load_spec_text(text: str, *, source: str = "spec") -> dict[str, Any]:
    """A spec written out, JSON or YAML; the text is the spec, never the name of a file."""
    _check_text_size(text, source)
    if text.lstrip().startswith("{"):
        if _json_nesting_above(text, MAX_SPEC_DEPTH):
            raise SpecError(source, _TOO_DEEP)
        try:
            data = json.loads(text)  # text that starts with { parses to a mapping or not at all
        except json.JSONDecodeError:
            data = _parse_yaml(text, source=source)  # YAML's flow mapping: {name: x, ...}
    else:
        data = _parse_yaml(text, source=source)
    if not isinstance(data, dict):
        if isinstance(data, str) and "\n" not in text.strip():
            raise SpecError(source, "expected a mapping of spec fields, got one line of text; give the spec itself "
                                    "(YAML or JSON), or choose one of the project's spec files as spec_file")
        raise SpecError(source, "expected a YAML mapping of spec fields")
    return data


def load_spec_object(data: Mapping[str, Any], *, source: str = "spec") -> dict[str, Any]:
    """A spec given as an object (a DAG run's conf over REST, a dict in Python), size and depth checked."""
    if not isinstance(data, Mapping):
        raise SpecError(source, f"expected a mapping of fields, got {type(data).__name__}")
    check_spec_object(data, source=source)
    return data if isinstance(data, dict) else dict(data)


def load_spec_param(value: Any) -> dict[str, Any]:
    """The `spec` param of a DAG run (trigger form, REST or CLI conf): YAML or JSON text, or an object.

    Never a path: a string is read as the spec itself, so nothing the conf says opens a file on the
    worker (a file is chosen with `spec_file`, see `load_project_spec`).
    """
    if isinstance(value, Mapping):
        return load_spec_object(value)
    if isinstance(value, str):
        return load_spec_text(value)
    raise SpecError("spec", f"expected YAML or JSON text or an object, got {type(value).__name__}")


def project_spec_files(root: Path = PROJECT_ROOT) -> dict[str, Path]:
    """The project's spec files by the name the trigger form offers (`specs/iris-quick.yaml`): the
    `*.yaml` files of specs/ that are still inside it once resolved (a symlink may not lead out)."""
    folder = root / SPECS_FOLDER
    inside = folder.resolve()
    found: dict[str, Path] = {}
    for path in sorted(folder.glob("*.yaml")):
        real = path.resolve()
        if real.parent == inside and real.is_file():
            found[f"{SPECS_FOLDER}/{path.name}"] = real
    return found


def load_project_spec(name: Any, *, root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """The `spec_file` param: one of `project_spec_files` by its name, and nothing else (no other path,
    no `..`, no absolute path, no symlink leading out of specs/)."""
    files = project_spec_files(root)
    if not isinstance(name, str) or name not in files:
        shown = repr(name) if len(repr(name)) <= 80 else f"{repr(name)[:77]}..."
        raise SpecError("spec_file", f"{shown} is not one of the project's spec files; choose one of "
                                     f"{', '.join(files) or '(none in specs/)'}")
    return load_spec_file(files[name], source=name)


def load_spec_file(path: str | Path, *, source: str | None = None) -> dict[str, Any]:
    """A spec file the local user names on their own machine (`mlfleet sweep SPEC.yaml`), or one of the
    project's (`load_project_spec`). Never called with a DAG run's conf."""
    path = Path(path).expanduser()
    where = source or str(path)
    try:
        if not path.is_file():
            raise SpecError("spec", f"file {str(path)!r} does not exist")
        if path.stat().st_size > MAX_SPEC_BYTES:  # refused before a byte is read
            raise SpecError(where, _TOO_LARGE)
        with path.open(encoding="utf-8") as f:
            text = f.read(MAX_SPEC_BYTES + 1)  # a file that grew since is still cut off
    except OSError as err:
        raise SpecError(where, f"cannot be read ({err.strerror or type(err).__name__})") from None
    except UnicodeDecodeError:
        raise SpecError(where, "is not UTF-8 text") from None
    return load_spec_text(text, source=where)


def load_spec_data(source: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """The spec's fields as a mapping, not yet validated, for the local user and the library: a mapping,
    a `Path` (a file), or a string: the spec's text, or the path of a file when it is one line that
    is neither JSON nor `key: value`. A DAG run's conf goes through `load_spec_param` instead.

    What `load_spec` validates; callers that change fields first (trigger-form overrides) start here.
    """
    if isinstance(source, Mapping):
        return load_spec_object(source)
    if isinstance(source, Path):
        return load_spec_file(source)
    text = str(source)
    if "\n" not in text.strip() and not text.lstrip().startswith("{") and ": " not in text:
        return load_spec_file(text.strip())
    return load_spec_text(text)


def load_spec(source: str | Path | Mapping[str, Any]) -> ExperimentSpec:
    """Validate a spec from a mapping, its text, or a file the local user names (`load_spec_data`)."""
    return parse_spec(load_spec_data(source))


def check_spec_object(data: Any, *, source: str = "spec") -> None:
    """Refuse an object larger than MAX_SPEC_BYTES as JSON (counted, never serialized) or nested deeper
    than MAX_SPEC_DEPTH, walking it without recursion; before anything validates or copies it."""
    size = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (Mapping, list, tuple)):
            if depth > MAX_SPEC_DEPTH:
                raise SpecError(source, _TOO_DEEP)
            size += 2 + len(value)  # brackets and separators
            if size > MAX_SPEC_BYTES:
                raise SpecError(source, _TOO_LARGE)
            if isinstance(value, Mapping):
                for key, item in value.items():
                    size += _scalar_size(key)
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in value)
        else:
            size += _scalar_size(value)
        if size > MAX_SPEC_BYTES:
            raise SpecError(source, _TOO_LARGE)


def _scalar_size(value: Any) -> int:
    """About what the value takes in JSON, without writing it out (a huge int has no str() anyway)."""
    if isinstance(value, str):
        return 2 + (len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass")))
    if isinstance(value, bool) or value is None:
        return 5
    if isinstance(value, int):
        return 2 + value.bit_length() * 3 // 10
    return 24


def _check_text_size(text: str, source: str) -> None:
    if len(text) > MAX_SPEC_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_SPEC_BYTES:
        raise SpecError(source, _TOO_LARGE)


def _json_nesting_above(text: str, limit: int) -> bool:
    """Whether JSON text nests more than `limit` deep, counted on its brackets outside strings, so the
    recursive decoder never sees a hostile document. Linear on any input (a regex for JSON strings
    can backtrack on runs of escaped quotes)."""
    unescaped = text.replace("\\\\", "").replace('\\"', "")  # escaped backslashes, then escaped quotes
    outside = "".join(unescaped.split('"')[::2])  # even pieces lie outside strings
    depth = 0
    for char in _NOT_A_BRACKET.sub("", outside):
        if char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False
