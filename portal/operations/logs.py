"""Structured (JSON) application logs, one object per line, each with the request's id.

The same request id is written to the audit events of that request, so a log line and an
audit event can be matched. Logs never carry personal data or secrets: a request is logged by
its endpoint name, never by its URL (invitation links carry tokens) or its form data.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import time

from flask import Flask, Response, g, has_request_context, request

from portal.core.security import request_id

# Only these extra fields are copied into a log line.
FIELDS = ("event", "method", "endpoint", "status", "duration_ms")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if has_request_context():
            line["request_id"] = request_id()
        for field in FIELDS:
            if hasattr(record, field):
                line[field] = getattr(record, field)
        if record.exc_info:
            line["exception"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


log = logging.getLogger("portal.requests")


def _start_timer() -> None:
    g.started_at = time.perf_counter()


def _log_request(response: Response) -> Response:
    if request.endpoint != "static":
        started = g.get("started_at", time.perf_counter())
        log.info(
            "request",
            extra={
                "event": "request",
                "method": request.method,
                "endpoint": request.endpoint or "not_found",
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
    return response


def init_app(app: Flask) -> None:
    logger = logging.getLogger("portal")
    logger.setLevel(app.config.get("LOG_LEVEL", "INFO"))
    if app.testing:
        logger.propagate = True  # the tests read the records through pytest's capture
    elif not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
        logger.propagate = False
    app.before_request(_start_timer)
    app.after_request(_log_request)
