"""Reading a SAM template as CloudFormation for the emulator: transform, conditions, intrinsics.

The SAM transform is samtranslator's own (the library ``sam deploy`` uses), so the emulator
deploys what CloudFormation would. Local ``CodeUri`` folders become a placeholder S3 location
that :mod:`emulator.cloudformation.deploy` replaces with a zip of the folder.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from base.errors import InvalidInputError

LOCAL_CODE_BUCKET = "jitr-local-code"
_SUB_RE = re.compile(r"\$\{([^}!][^}]*)\}")
NO_VALUE = object()

# samtranslator adds these managed policies by name; real AWS resolves them through IAM.
MANAGED_POLICIES = {
    "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "AWSIoTThingsRegistration": "arn:aws:iam::aws:policy/service-role/AWSIoTThingsRegistration",
}


class TemplateError(InvalidInputError):
    """A template the emulator cannot deploy."""


class _StaticPolicies:
    def load(self) -> dict[str, str]:
        return dict(MANAGED_POLICIES)


def load_sam(path: Path, parameters: Mapping[str, str]) -> tuple[dict, dict[str, Path]]:
    """The CloudFormation template of a SAM template, and the local code folder of each function."""
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    path = Path(path)
    try:
        template = yaml_parse(path.read_text())
    except OSError as exc:
        raise TemplateError(f"Cannot read the template {path}: {exc.strerror}.") from exc
    except Exception as exc:
        raise TemplateError(f"{path} is not a valid YAML template: {exc}.") from exc
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise TemplateError(f"{path} is not a CloudFormation or SAM template: it has no Resources section.")
    if not isinstance(template.get("Parameters") or {}, dict):
        raise TemplateError(f"{path} is not a valid template: its Parameters section is not a mapping.")
    check_parameters(template, parameters)
    code_dirs: dict[str, Path] = {}
    shared = ((template.get("Globals") or {}).get("Function") or {}).get("CodeUri")
    for name, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.setdefault("Properties", {})
        if "CodeUri" not in props and "InlineCode" not in props and shared is not None:
            props["CodeUri"] = shared  # Globals' CodeUri, made this function's own so its folder is zipped
        if isinstance(props.get("CodeUri"), str):
            folder = (path.parent / props["CodeUri"]).resolve()
            if not props["CodeUri"].startswith("s3://"):
                if not folder.is_dir():
                    raise TemplateError(f"Function {name}: CodeUri {props['CodeUri']} is not a folder.")
                code_dirs[name] = folder
                props["CodeUri"] = f"s3://{LOCAL_CODE_BUCKET}/{name}.zip"
    try:
        translated = transform(template, dict(parameters), _StaticPolicies())
    except Exception as exc:
        raise TemplateError(f"The SAM transform of {path} failed: {exc}.") from exc
    return translated, code_dirs


def check_parameters(template: Mapping[str, Any], given: Mapping[str, str]) -> None:
    """Refuse what CloudFormation refuses before it creates anything: unknown parameters, required ones
    without a value, and values outside AllowedValues, AllowedPattern, Min/MaxLength or Min/MaxValue."""
    declared = template.get("Parameters") or {}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise TemplateError(f"The template has no parameter {unknown[0]}.")
    missing = sorted(name for name, spec in declared.items() if name not in given and "Default" not in (spec or {}))
    if missing:  # CloudFormation: "Parameters: [X] must have values"
        names = ", ".join(missing)
        raise TemplateError(f"Parameters: [{names}] must have values (--parameter-overrides {missing[0]}=...).")
    for name, spec in declared.items():
        value = given[name] if name in given else spec.get("Default")
        _check_value(name, spec or {}, str(value))


def _check_value(name: str, spec: Mapping[str, Any], value: str) -> None:
    def refuse(rule: str) -> TemplateError:
        reason = spec.get("ConstraintDescription") or rule  # CloudFormation prefers the template's description
        return TemplateError(
            f"Parameter {name} failed to satisfy constraint: {str(reason).rstrip('.')} (got {value!r})."
        )

    kind = spec.get("Type", "String")
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in [str(v) for v in allowed]:
        raise refuse(f"must be one of {', '.join(map(str, allowed))}")
    if kind == "Number":
        try:
            number = float(value)
        except ValueError:
            raise refuse("must be a number") from None
        if "MinValue" in spec and number < float(spec["MinValue"]):
            raise refuse(f"must be at least {spec['MinValue']}")
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            raise refuse(f"must be at most {spec['MaxValue']}")
        return
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        raise refuse(f"must be at least {spec['MinLength']} characters")
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        raise refuse(f"must be at most {spec['MaxLength']} characters")
    pattern = spec.get("AllowedPattern")
    if pattern is not None:
        items = value.split(",") if kind == "CommaDelimitedList" else [value]
        try:
            matched = all(re.fullmatch(str(pattern), item) for item in items)  # the pattern must match it all
        except re.error as exc:
            raise TemplateError(f"Parameter {name} has an AllowedPattern Python cannot read: {exc}.") from exc
        if not matched:
            raise refuse(f"must match pattern {pattern}")


def parameter_values(template: Mapping[str, Any], given: Mapping[str, str], pseudo: Mapping[str, str]) -> dict:
    """Values of every parameter: given, else Default (:func:`load_sam` ran :func:`check_parameters`)."""
    values = dict(pseudo)
    for name, spec in (template.get("Parameters") or {}).items():
        values[name] = given[name] if name in given else spec["Default"]
    return values


def dependencies(node: Any) -> set[str]:
    """Logical ids a resource refers to through Ref, Fn::GetAtt and Fn::Sub."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else value.split(".")[0])
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                found |= {name.split(".")[0] for name in _SUB_RE.findall(text)}
            found |= dependencies(value)
    elif isinstance(node, list):
        for item in node:
            found |= dependencies(item)
    return found


class Resolver:
    """Evaluates intrinsic functions against parameters, conditions and created resources."""

    def __init__(self, values: dict[str, Any], conditions: Mapping[str, Any], attribute: Callable[[str, str], Any]):
        self.values = values  # parameters, pseudo parameters, and each created resource's Ref
        self.attribute = attribute
        self.conditions: dict[str, bool] = {}
        for name, expression in (conditions or {}).items():
            self.conditions[name] = bool(self.resolve(expression))

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [item for item in (self.resolve(i) for i in node) if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            handler = _FUNCTIONS.get(key)
            if handler is not None:
                return handler(self, arg)
        resolved = {k: self.resolve(v) for k, v in node.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name not in self.values:
            raise TemplateError(f"Ref {name} names nothing the template defines.")
        return self.values[name]

    def sub(self, arg: Any) -> str:
        text, variables = (arg[0], self.resolve(arg[1])) if isinstance(arg, list) else (arg, {})

        def value(match: re.Match) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name:  # ${Resource.Attribute}
                resource, attribute = name.split(".", 1)
                return str(self.attribute(resource, attribute))
            return str(self.ref(name))

        return _SUB_RE.sub(value, text).replace("${!", "${")


_FUNCTIONS: dict[str, Callable[[Resolver, Any], Any]] = {
    "Ref": lambda r, a: r.ref(a),
    "Fn::GetAtt": lambda r, a: r.attribute(*(a if isinstance(a, list) else a.split(".", 1))),
    "Fn::Sub": lambda r, a: r.sub(a),
    "Fn::Join": lambda r, a: str(a[0]).join(str(x) for x in r.resolve(a[1])),
    "Fn::If": lambda r, a: r.resolve(a[1] if r.conditions[a[0]] else a[2]),
    "Fn::Equals": lambda r, a: r.resolve(a[0]) == r.resolve(a[1]),
    "Fn::Not": lambda r, a: not r.resolve(a[0]),
    "Fn::And": lambda r, a: all(r.resolve(x) for x in a),
    "Fn::Or": lambda r, a: any(r.resolve(x) for x in a),
    "Fn::Select": lambda r, a: r.resolve(a[1])[int(r.resolve(a[0]))],
    "Condition": lambda r, a: r.conditions[a],
}


def copy_template(template: Mapping[str, Any]) -> dict:
    return copy.deepcopy(dict(template))
