"""Load, override, validate and hash recipes; turn pydantic errors into one readable report."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ablate.errors import Problem, RecipeError, closest
from ablate.fingerprint import content_hash
from ablate.recipe.schema import SAFE_NAME, Recipe
from ablate.recipe.yaml_source import Sourced, apply_overrides, load_with_bases
from ablate.registry import ComponentConfig, registries

# Fields that name or file a run but do not change what it computes.
COSMETIC_FIELDS = {"name", "description", "tracking", "output_dir"}


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    src = apply_overrides(load_with_bases(path), overrides)
    return validate_sourced(src)


def recipe_from_dict(data: dict[str, Any], source: str = "<dict>", runnable: bool = False) -> Recipe:
    """A recipe from a dict (tests, tools); `runnable` also requires stages or a usable eval."""
    return validate_sourced(Sourced(data, {}, source), runnable=runnable)


def validate_sourced(src: Sourced, runnable: bool = True) -> Recipe:
    """The validated recipe; with `runnable`, also one that `ablate run` can carry out."""
    registries()  # load built-ins and plugins before validation looks anything up
    try:
        recipe = Recipe.model_validate(src.data)
    except ValidationError as exc:
        raise RecipeError(src.source, pydantic_problems(exc.errors(), src)) from None
    problems = runnable_problems(recipe, src) if runnable else []
    if problems:
        raise RecipeError(src.source, problems)
    return recipe


def runnable_problems(recipe: Recipe, src: Sourced) -> list[Problem]:
    """What makes a schema-valid recipe impossible to run."""
    if not recipe.stages and recipe.eval is None:
        return [Problem("stages", "the recipe has no stages and no eval section: nothing to run", src.where(("stages",)))]
    if not recipe.stages and recipe.eval.template is None:
        return [Problem("eval.template", "required when the recipe has no stages (there is no last stage "
                        "whose template evaluation could use)", src.where(("eval", "template")))]
    return []


def recipe_hash(recipe: Recipe) -> str:
    """Stable content hash of what the recipe computes (names and tracking excluded)."""
    payload = recipe.model_dump(mode="json", exclude=COSMETIC_FIELDS)
    return content_hash(payload)


# --- error rendering -------------------------------------------------------------------------


def pydantic_problems(errors: list[dict[str, Any]], src: Sourced, root: type[BaseModel] = Recipe) -> list[Problem]:
    """Every pydantic error as a Problem, one per place: a value that fits no member of a union
    (an int or a list) fails once per member, and those say together what it should be."""
    merged: dict[tuple[str, str | None], Problem] = {}
    for err in relevant_errors(errors):
        problem = pydantic_problem(err, src, root)
        key = (problem.path, problem.location)
        if key in merged:
            got = f" (got {err['input']!r})" if "input" in err and not isinstance(err["input"], (dict, list)) else ""
            first = merged[key].message.removesuffix(got)
            merged[key] = Problem(problem.path, f"{first}; or {problem.message[:1].lower()}{problem.message[1:]}",
                                  problem.location)
        else:
            merged[key] = problem
    return list(merged.values())


def relevant_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop a union branch's "not this kind" miss (`'frozen' or 'full'`, "a valid string") for a
    mapping or list when another branch, which took it, said what is actually wrong inside it:
    `trainable.llm: {lora: {r: 0}}` is one problem (r), not two."""
    def branch_miss(err: dict[str, Any]) -> bool:
        kind = err["type"]
        return (kind.endswith("_type") or kind == "literal_error") and isinstance(err.get("input"), (dict, list))

    out = []
    for err in errors:
        prefix = tuple(err["loc"][:-1])
        if branch_miss(err) and any(o is not err and tuple(o["loc"][: len(prefix)]) == prefix and not branch_miss(o)
                                    for o in errors):
            continue
        out.append(err)
    return out


def pydantic_problem(err: dict[str, Any], src: Sourced, root: type[BaseModel] = Recipe) -> Problem:
    """One pydantic error as a Problem: real YAML path, file:line, and a suggestion for typos.
    `root` is the model validated (a Recipe, a study file...)."""
    loc = tuple(k for k in err["loc"] if not (isinstance(k, str) and k.startswith(("function-", "json-or-python"))))
    loc = _strip_union_tags(loc, src.data)
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        allowed = _fields_at(loc[:-1], src.data, root)
        hint = closest(str(loc[-1]), allowed) if allowed else None
        message = f"unknown key {loc[-1]!r}." + (f" Did you mean {hint!r}?" if hint else "")
        if allowed:
            message += f" Allowed: {', '.join(sorted(allowed))}"
    elif err["type"] == "missing":
        message = message if message != "Field required" else "required field is missing"
    elif err["type"] == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == SAFE_NAME:
        message = (f"{err['input']!r} cannot name a folder: use letters, digits, '_', '.' and '-', "
                   "not starting with '.' or '-'")
    elif err["type"] == "value_error":
        message = message.removeprefix("Value error, ")
        if "input" in err and not isinstance(err["input"], (dict, list)) and repr(err["input"]) not in message:
            message += f" (got {err['input']!r})"
    elif "input" in err and err["type"] not in {"unknown_component"} and not isinstance(err["input"], (dict, list)):
        message += f" (got {err['input']!r})"
    path = ".".join(str(k) for k in loc)
    return Problem(path, message, src.where(loc))


def _strip_union_tags(loc: tuple, data: Any) -> tuple:
    """Drop pydantic's union-member names (e.g. 'Lora', 'literal[...]') that are not real keys."""
    out: list[Any] = []
    node, found = data, True
    for key in loc:
        if found and not isinstance(node, (dict, list)):
            continue  # below a value that is there and is no container: only union labels ('int', 'list[int]')
        if isinstance(node, dict) and key in node:
            out.append(key)
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            out.append(key)
            node = node[key]
        elif isinstance(node, (dict, list)) and isinstance(key, str) and (key[:1].isupper() or "[" in key or key in {"str", "int", "dict[str,any]", "none"}):
            continue  # a union branch label
        else:
            out.append(key)
            node, found = None, False
    return tuple(out)


def _fields_at(loc: tuple, data: Any, root: Any = Recipe) -> list[str] | None:
    """Field names allowed at `loc`, walking the schema (component blocks via the registry)."""
    model: Any = root
    node = data
    for key in loc:
        node = node[key] if isinstance(node, (dict, list)) and _has(node, key) else None
        model = _child_type(model, key, node)
        if model is None:
            return None
    return _allowed(model, node)


def _has(node: Any, key: Any) -> bool:
    return key in node if isinstance(node, dict) else isinstance(key, int) and key < len(node)


def _allowed(model: Any, node: Any) -> list[str] | None:
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return None


def _child_type(model: Any, key: Any, node: Any) -> Any:
    if typing.get_origin(model) is dict:
        return _concrete(typing.get_args(model)[1], node)
    if isinstance(key, int):
        args = [a for a in typing.get_args(model) if a is not type(None)]
        return _concrete(args[0], node) if args else None
    if not (isinstance(model, type) and issubclass(model, BaseModel)) or key not in model.model_fields:
        return None
    field = model.model_fields[key]
    return _concrete(field.annotation, node, field.metadata)


def _concrete(annotation: Any, node: Any, metadata: list | None = None) -> Any:
    """Resolve Optional/Union/Annotated/Component to the model class that applies to `node`."""
    for meta in list(metadata or []) + list(getattr(annotation, "__metadata__", ())):
        registry_of = getattr(getattr(meta, "func", None), "component_registry", None)
        if registry_of and isinstance(node, dict) and node.get("type") in registry_of():
            return registry_of().get(node["type"]).config
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _concrete(typing.get_args(annotation)[0], node)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        for arg in typing.get_args(annotation):
            found = _concrete(arg, node)
            if isinstance(found, type) and issubclass(found, BaseModel) and found is not ComponentConfig:
                return found
        for arg in typing.get_args(annotation):
            if typing.get_origin(arg) in (list, dict):
                return arg
        return None
    return annotation
