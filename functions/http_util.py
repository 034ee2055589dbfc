"""Small helpers for HTTP answers (JSON bodies, errors that say what is wrong)."""
from __future__ import annotations

import json
from typing import Any

import azure.functions as func


def json_response(data: Any, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(data, ensure_ascii=False, indent=1), status_code=status,
                             mimetype="application/json", charset="utf-8")


def error_response(status: int, message: str) -> func.HttpResponse:
    return json_response({"error": message}, status)
