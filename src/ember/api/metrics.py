"""Prometheus metrics for one app, exposed at `GET /metrics` in the text exposition format.

`Metrics` owns a per-app `CollectorRegistry` (several apps in one process never collide) and records:
HTTP requests, latency and errors per route template (a pure ASGI middleware; unknown paths are "other",
never the raw path), tokens, time to first token and generation time per mode (as the pipeline's
`PipelineObserver`), transcriptions and their audio seconds per speech role, and, read at scrape time,
the generations in flight per engine role and the admission limit's state (requests running and waiting,
its limits, and the requests it refused).

The middleware never buffers a response: it times it until its last body message (so an SSE stream is
measured until it ends) and copies only the body of a JSON error, up to 64 KiB, to read its OpenAI `code`.
It does not see errors a stream reports in-band after its 200 headers. `/metrics` needs no key on
loopback; when keys are required it needs a key with the `admin` scope.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

import fastapi.routing
from fastapi import APIRouter, FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.routing import Match

from ember.api.deps import PrincipalDep, SettingsDep
from ember.types import Route, Usage

ASGIApp = Callable[..., Any]
ERROR_BODY_CAP = 64 * 2**10
CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")  # what an envelope's code may be to become a label value
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)


class Metrics:
    """The app's metrics and their registry; also the pipeline's observer."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.requests = Counter(
            "ember_http_requests", "HTTP requests answered", ["route", "method", "status"], registry=reg
        )
        self.latency = Histogram(
            "ember_http_request_seconds",
            "HTTP request time until the response's last byte (streams included)",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.errors = Counter("ember_errors", "Error responses by OpenAI error code", ["route", "code"], registry=reg)
        self.tokens = Counter("ember_tokens", "Tokens processed", ["mode", "kind"], registry=reg)
        self.ttft = Histogram(
            "ember_time_to_first_token_seconds",
            "Time from the start of a generation to its first token",
            ["mode"],
            buckets=TTFT_BUCKETS,
            registry=reg,
        )
        self.generation = Histogram(
            "ember_generation_seconds", "Time of a whole generation", ["mode"], buckets=LATENCY_BUCKETS, registry=reg
        )
        self.routes = Counter("ember_routes", "Requests ember-auto routed, by target", ["mode", "target"], registry=reg)
        self.transcriptions = Counter("ember_transcriptions", "Audio clips transcribed", ["role"], registry=reg)
        self.audio_seconds = Counter(
            "ember_transcribed_audio_seconds", "Seconds of audio transcribed", ["role"], registry=reg
        )

    # PipelineObserver
    def chat_done(self, mode: str, usage: Usage | None, first_token_s: float | None, total_s: float) -> None:
        if usage is not None:
            self.tokens.labels(mode, "prompt").inc(usage.prompt_tokens)
            self.tokens.labels(mode, "completion").inc(usage.completion_tokens)
        if first_token_s is not None:
            self.ttft.labels(mode).observe(first_token_s)
        if first_token_s is not None or usage is not None:  # a generation ran (not refused before its start)
            self.generation.labels(mode).observe(total_s)

    def routed(self, mode: str, route: Route) -> None:
        self.routes.labels(mode, route.target).inc()

    def transcribed(self, role: str, audio_s: float) -> None:
        self.transcriptions.labels(role).inc()
        self.audio_seconds.labels(role).inc(audio_s)

    def http_done(self, route: str, method: str, status: int, code: str | None, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)
        if code is not None:
            self.errors.labels(route, code).inc()

    def install(self, app: FastAPI) -> None:
        """Count the app's traffic, watch its engines and serve `/metrics`. Call last in `create_app`, so
        that the middleware is the outermost and also sees responses other middleware answers alone."""
        self.registry.register(EngineActivity(app))
        self.registry.register(AdmissionState(app))
        app.include_router(_router(self))
        app.add_middleware(HttpMetrics, metrics=self)


def _router(metrics: Metrics) -> APIRouter:
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def scrape(principal: PrincipalDep, settings: SettingsDep) -> Response:
        if settings.keys_required:
            principal.require("admin")
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router


class EngineActivity(Collector):
    """`ember_engine_active{role}`: generations (or transcriptions) in flight per loaded engine, at scrape time."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def collect(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily("ember_engine_active", "Work in flight per engine role", labels=["role"])
        pipeline = getattr(self.app.state, "pipeline", None)
        engines: dict[str, Any] = pipeline.engines.loaded() if pipeline is not None else {}
        for role, engine in sorted(engines.items()):
            gauge.add_metric([role], float(getattr(engine, "active", 0)))
        yield gauge


class AdmissionState(Collector):
    """`ember_admission_requests{state}` (running, waiting) and `ember_admission_limit{state}`, with
    `ember_admission_refused_total` (503 server_busy) and `ember_admission_admitted_total`, at scrape time."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def collect(self) -> Iterable[Metric]:
        admission = getattr(self.app.state, "admission", None)
        if admission is None:  # not started yet
            return
        now = GaugeMetricFamily("ember_admission_requests", "Generation requests running or waiting", labels=["state"])
        limit = GaugeMetricFamily("ember_admission_limit", "Most generation requests at once", labels=["state"])
        for state, current, most in (
            ("running", admission.running, admission.max_running),
            ("waiting", admission.waiting, admission.max_waiting),
        ):
            now.add_metric([state], float(current))
            limit.add_metric([state], float(most))
        yield now
        yield limit
        yield CounterMetricFamily("ember_admission_admitted", "Requests admitted", value=float(admission.admitted))
        yield CounterMetricFamily(
            "ember_admission_refused", "Requests refused as the server was busy", value=float(admission.refused)
        )


def _routes(app: Any) -> Iterable[Any]:
    """The app's routes, those of included routers one by one with their full paths."""
    routes = getattr(app, "routes", ())
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)  # FastAPI that keeps included routers nested
    return flatten(routes) if flatten is not None else routes


def route_template(scope: dict[str, Any]) -> str:
    """The path template of the route `scope` goes to (a method mismatch still names it), else "other".
    Matched before routing, so that a request refused by middleware is labelled with its route too."""
    probe = dict(scope)  # matching is meant to be pure; a copy keeps the real routing unaffected regardless
    for route in _routes(scope.get("app")):
        match, _ = route.matches(probe)
        if match is not Match.NONE:
            return str(getattr(route, "path_format", None) or getattr(route, "path", None) or "other")
    return "other"


def error_code(status: int, body: bytes) -> str:
    """The OpenAI `code` of an error envelope; without one: server_error (5xx), client_closed_request (499,
    the client left before its answer) or http_<status>."""
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = None
    if isinstance(code, str) and CODE.fullmatch(code):
        return code
    if status >= 500:
        return "server_error"
    return "client_closed_request" if status == 499 else f"http_{status}"


class _Seen:
    """What the middleware saw of a response as it went out."""

    def __init__(self) -> None:
        self.status = 0
        self.capture = False
        self.body = b""

    def observe(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            ctype = dict(message.get("headers", ())).get(b"content-type", b"")
            self.capture = self.status >= 400 and ctype.startswith(b"application/json")
        elif message["type"] == "http.response.body" and self.capture:
            self.body += message.get("body", b"")
            if len(self.body) > ERROR_BODY_CAP:
                self.capture, self.body = False, b""


class HttpMetrics:
    """Pure ASGI middleware: count and time each HTTP request by route template, method and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route, method, t0 = route_template(scope), scope["method"], time.perf_counter()
        seen = _Seen()

        async def observing_send(message: dict[str, Any]) -> None:
            seen.observe(message)
            await send(message)

        try:
            await self.app(scope, receive, observing_send)
        except Exception:
            seen.status = seen.status or 500  # the outer error middleware answers 500 for it
            raise
        finally:
            status = seen.status or 499  # no response at all: the client went away (cancelled)
            code = error_code(status, seen.body) if status >= 400 else None
            self.metrics.http_done(route, method, status, code, time.perf_counter() - t0)
