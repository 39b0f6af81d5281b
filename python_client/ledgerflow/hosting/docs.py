"""What a service says about itself: ``/openapi.json`` (OpenAPI 3.1, each request model's
JSON schema included) and ``/docs``, a page listing the endpoints and their request
fields, written from that document (no scripts, nothing fetched from elsewhere)."""

from __future__ import annotations

import html
from typing import Any

from ledgerflow.hosting.spec import Endpoint

_ANSWERS = {
    "400": "the body is not a JSON object",
    "4XX": 'the endpoint raised HTTPError(status, detail): {"error": detail}',
    "413": "the body is over the server's limit (--max-body)",
    "500": "the endpoint raised, or its result has no JSON form",
    "503": "no successful run to answer from yet",
}


def openapi_document(title: str, endpoints: list[Endpoint]) -> dict[str, Any]:
    """An OpenAPI 3.1 description of `endpoints`."""
    schemas, refs = _model_schemas(endpoints)
    paths: dict[str, Any] = {}
    for each in endpoints:
        answers: dict[str, Any] = {"200": {"description": "the endpoint's answer (JSON)"}}
        if each.response_model is not None:
            schema = refs[each.response_model, "serialization"]
            answers["200"]["content"] = {"application/json": {"schema": schema}}
        if each.request_model is not None:
            answers["422"] = {"description": "a field is missing or invalid (each is named)"}
        answers.update({code: {"description": text} for code, text in _ANSWERS.items()})
        answers = dict(sorted(answers.items()))
        common = {"summary": each.summary, "description": each.description, "responses": answers}
        body = {"type": "object"}
        parameters: list[dict[str, Any]] = []
        if each.request_model is not None:
            body = refs[each.request_model, "validation"]
            parameters = _query_parameters(schemas[body["$ref"].rpartition("/")[2]])
        paths[f"/{each.name}"] = {
            "get": {**common, "parameters": parameters},
            "post": {
                **common,
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": body}},
                },
            },
        }
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1"},
        "paths": paths,
    }
    if schemas:
        document["components"] = {"schemas": schemas}
    return document


def _model_schemas(endpoints: list[Endpoint]) -> tuple[dict[str, Any], dict[Any, Any]]:
    """The JSON schemas of the request and response models (for components.schemas),
    and the reference to each model's, by (model, mode)."""
    wanted = sorted(
        {(each.request_model, "validation") for each in endpoints if each.request_model}
        | {(each.response_model, "serialization") for each in endpoints if each.response_model},
        key=lambda pair: (pair[0].__qualname__, pair[1]),
    )
    if not wanted:
        return {}, {}
    from pydantic.json_schema import models_json_schema

    refs, top = models_json_schema(wanted, ref_template="#/components/schemas/{model}")  # type: ignore[arg-type]
    return dict(top.get("$defs", {})), dict(refs)


def _query_parameters(model: dict[str, Any]) -> list[dict[str, Any]]:
    """GET's query parameters: the request model's fields (given as text, converted as
    the model says)."""
    required = set(model.get("required", []))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": schema,
            **({"description": schema["description"]} if "description" in schema else {}),
        }
        for name, schema in model.get("properties", {}).items()
    ]


def docs_page(document: dict[str, Any]) -> str:
    """The ``/docs`` page: each endpoint, what it does and its request fields."""
    title = html.escape(document["info"]["title"])
    schemas = document.get("components", {}).get("schemas", {})
    sections = []
    for path, methods in document["paths"].items():
        post = methods["post"]
        body = post["requestBody"]["content"]["application/json"]["schema"]
        model = schemas.get(body.get("$ref", "").rpartition("/")[2]) if "$ref" in body else None
        rows = "".join(
            f"<tr><td><code>{html.escape(name)}</code></td>"
            f"<td>{html.escape(_type_name(field))}</td>"
            f"<td>{'yes' if name in (model or {}).get('required', []) else 'no'}</td>"
            f"<td>{html.escape(_default(field))}</td>"
            f"<td>{html.escape(field.get('description', ''))}</td></tr>"
            for name, field in (model or {}).get("properties", {}).items()
        )
        fields = (
            "<table><tr><th>field</th><th>type</th><th>required</th><th>default</th>"
            f"<th>description</th></tr>{rows}</table>"
            if model is not None
            else "<p>Any JSON object (POST) or query parameters (GET): the endpoint reads "
            "them as a dict.</p>"
        )
        answers = "".join(
            f"<li><code>{code}</code> {html.escape(answer['description'])}</li>"
            for code, answer in post["responses"].items()
        )
        description = html.escape(post["description"]).replace("\n\n", "</p><p>")
        sections.append(
            f'<section id="{html.escape(path[1:])}"><h2><code>GET | POST {html.escape(path)}'
            f"</code></h2><p>{description or html.escape(post['summary'])}</p>"
            f"<h3>Request fields</h3>{fields}<h3>Answers</h3><ul>{answers}</ul></section>"
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}: endpoints</title><style>{_STYLE}</style></head><body>"
        f"<h1>{title}</h1><p>Each endpoint answers GET (its query parameters are the "
        "request) and POST (a JSON object). Every answer names its run in the "
        "<code>x-ledgerflow-run</code> header. The same as OpenAPI: "
        f'<a href="openapi.json">openapi.json</a>.</p>{"".join(sections)}</body></html>'
    )


def _type_name(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rpartition("/")[2]
    if "anyOf" in schema:
        return " | ".join(_type_name(option) for option in schema["anyOf"])
    if "enum" in schema:
        return "one of " + ", ".join(repr(value) for value in schema["enum"])
    if schema.get("type") == "array":
        return f"list[{_type_name(schema.get('items', {}))}]"
    if schema.get("type") == "object" and "additionalProperties" in schema:
        return f"dict[str, {_type_name(schema['additionalProperties'])}]"
    return str(schema.get("type", "any"))


def _default(schema: dict[str, Any]) -> str:
    return repr(schema["default"]) if "default" in schema else ""


_STYLE = (
    "body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem;"
    "text-align:left;vertical-align:top}section{margin-top:2rem}h2{font-size:1.2rem}"
)
