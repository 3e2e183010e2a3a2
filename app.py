"""Dynavera's Chalice app: thin REST, WebSocket and SQS handlers over chalicelib's services."""

from __future__ import annotations

import json
from typing import Any

from chalice import Chalice, CORSConfig, Rate, Response
from chalice.app import Request, SQSEvent, WebsocketAPI, WebsocketEvent

from chalicelib import (
    agents,
    auth,
    capacity,
    collections,
    documents,
    executor,
    keys,
    runs,
    telemetry,
    usage,
    validation,
    websocket,
)
from chalicelib.errors import DynaveraError, error_response, normalise_response
from chalicelib.settings import Settings
from chalicelib.wiring import wire

settings = Settings.from_env()
wire(settings)

# Chalice's app logger is logging.getLogger(app_name): the very logger telemetry's Powertools
# Logger(service="dynavera") owns. Left to configure it, Chalice sets it to ERROR, stops it
# propagating and adds a plain-text handler whenever it sees no handler on the sys.stdout of the
# moment (an import under another stdout than telemetry's, as under pytest's capture): INFO lines lost.
app = Chalice(app_name="dynavera", configure_logs=False)
# Chalice 1.34 still ships WebSocket support behind this flag; without it `chalice package` refuses.
app.experimental_feature_flags.update(["WEBSOCKETS"])
# Chalice derives an @connections client per event from the region; ours comes from settings.
app.websocket_api = WebsocketAPI(env={"AWS_REGION": settings.region})
# Every handler's edge, REST, WebSocket, SQS and schedule alike: log context, tracing, metrics.
app.register_middleware(telemetry.boundary, "all")
# Routes that answer without an API key.
PUBLIC_PATHS = {"/health", "/openapi.json"}
# The web console on CloudFront calls the API from its own origin, and only that origin is
# answered (a stage setting). `chalice package` reads it too: it writes the OPTIONS answers.
cors = (
    CORSConfig(allow_origin=settings.console_origin, allow_headers=["Idempotency-Key"], max_age=600)
    if settings.console_origin
    else None
)
app.api.cors = cors or False


@app.middleware("http")
def http_boundary(request: Request, get_response: Any) -> Response:
    """The API key checked, errors in the contract's shape."""
    try:
        if request.path not in PUBLIC_PATHS:
            request.context["user_id"] = auth.user_for_header(request.headers.get("authorization"))
        route = f"{request.method} {request.context.get('resourcePath', '')}"
        validation.only_known_parameters(route, request.query_params)
        response = get_response(request)
    except DynaveraError as err:
        response = error_response(err)
    response = normalise_response(response)
    if cors is not None:
        # Chalice adds CORS headers to a view's answer only; a refused key must be readable too.
        for name, value in cors.get_access_control_headers().items():
            response.headers.setdefault(name, value)
    return response


def _user() -> str:
    return app.current_request.context["user_id"]


def _body() -> dict[str, Any]:
    return validation.json_object(app.current_request.raw_body)


def _params() -> dict[str, str]:
    return dict(app.current_request.query_params or {})


@app.route("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.route("/openapi.json")
def openapi_document() -> dict[str, Any]:
    """The REST contract as OpenAPI 3.1, built from the constants validation enforces."""
    from chalicelib import openapi

    return openapi.document()


@app.route("/agents", methods=["GET"])
def list_agents() -> dict[str, Any]:
    params = _params()
    page, token = agents.list_page(_user(), validation.page_limit(params), params.get("next_token"))
    return {"agents": [agent.to_api() for agent in page], "next_token": token}


@app.route("/agents", methods=["POST"])
def create_agent() -> Response:
    agent = agents.create(_user(), _body())
    return Response(agent.to_api(), status_code=201)


@app.route("/agents/{agent_id}", methods=["GET"])
def get_agent(agent_id: str) -> dict[str, Any]:
    return agents.get(_user(), agent_id).to_api()


@app.route("/agents/{agent_id}", methods=["PATCH"])
def update_agent(agent_id: str) -> dict[str, Any]:
    return agents.update(_user(), agent_id, _body()).to_api()


@app.route("/agents/{agent_id}", methods=["DELETE"])
def delete_agent(agent_id: str) -> Response:
    agents.delete(_user(), agent_id)
    return Response("", status_code=204)


@app.route("/agents/{agent_id}/executions", methods=["POST"])
def start_execution(agent_id: str) -> Response:
    key = validation.idempotency_key(app.current_request.headers.get("idempotency-key"))
    execution = runs.start(_user(), agent_id, _body(), key)
    return Response(execution.to_api(), status_code=202)


@app.route("/agents/{agent_id}/executions", methods=["GET"])
def list_executions(agent_id: str) -> dict[str, Any]:
    params = _params()
    limit = validation.page_limit(params)
    page, token = runs.list_for_agent(_user(), agent_id, limit, params.get("next_token"))
    return {"executions": [execution.to_api() for execution in page], "next_token": token}


@app.route("/executions", methods=["GET"])
def list_all_executions() -> dict[str, Any]:
    page, token = runs.list_for_user(_user(), _params())
    return {"executions": [execution.to_api() for execution in page], "next_token": token}


@app.route("/executions/{execution_id}", methods=["GET"])
def get_execution(execution_id: str) -> dict[str, Any]:
    return runs.get(_user(), execution_id).to_api()


@app.route("/executions/{execution_id}/events", methods=["GET"])
def list_events(execution_id: str) -> dict[str, Any]:
    page, next_after = runs.events_page(_user(), execution_id, _params())
    return {"events": [event.to_api() for event in page], "next_after": next_after}


@app.route("/executions/{execution_id}/stop", methods=["POST"])
def stop_execution(execution_id: str) -> Response:
    return Response(runs.stop(_user(), execution_id).to_api(), status_code=202)


@app.route("/limits", methods=["GET"])
def get_limits() -> dict[str, Any]:
    return {"limits": usage.report(_user())}


@app.route("/keys", methods=["GET"])
def list_keys() -> dict[str, Any]:
    return {"keys": [row.to_api() for row in keys.list_keys(_user())]}


@app.route("/keys", methods=["POST"])
def create_key() -> Response:
    return Response(keys.create(_user(), _body()), status_code=201)


@app.route("/keys/{key_id}", methods=["DELETE"])
def revoke_key(key_id: str) -> Response:
    keys.revoke(keys.find(key_id, _user()))
    return Response("", status_code=204)


@app.route("/collections", methods=["GET"])
def list_collections() -> dict[str, Any]:
    params = _params()
    page, token = collections.list_page(_user(), validation.page_limit(params), params.get("next_token"))
    return {"collections": [collection.to_api() for collection in page], "next_token": token}


@app.route("/collections", methods=["POST"])
def create_collection() -> Response:
    return Response(collections.create(_user(), _body()).to_api(), status_code=201)


@app.route("/collections/{collection_id}", methods=["GET"])
def get_collection(collection_id: str) -> dict[str, Any]:
    return collections.get(_user(), collection_id).to_api()


@app.route("/collections/{collection_id}", methods=["DELETE"])
def delete_collection(collection_id: str) -> Response:
    return Response(collections.delete(_user(), collection_id).to_api(), status_code=202)


@app.route("/collections/{collection_id}/documents", methods=["POST"])
def create_document(collection_id: str) -> Response:
    document, upload, created = documents.create(_user(), collection_id, _body())
    return Response({"document": document.to_api(), "upload": upload}, status_code=201 if created else 200)


@app.route("/collections/{collection_id}/documents", methods=["GET"])
def list_documents(collection_id: str) -> dict[str, Any]:
    page, token = documents.list_page(_user(), collection_id, _params())
    return {"documents": [document.to_api() for document in page], "next_token": token}


@app.route("/collections/{collection_id}/documents/{document_id}", methods=["GET"])
def get_document(collection_id: str, document_id: str) -> dict[str, Any]:
    return documents.get(_user(), collection_id, document_id).to_api()


@app.route("/collections/{collection_id}/documents/{document_id}", methods=["DELETE"])
def delete_document(collection_id: str, document_id: str) -> Response:
    return Response(documents.delete(_user(), collection_id, document_id).to_api(), status_code=202)


@app.on_ws_connect()
def ws_connect(event: WebsocketEvent) -> dict[str, Any]:
    """Chalice has no WebSocket authorizer: $connect checks ?token= and refuses with 401."""
    token = (event.to_dict().get("queryStringParameters") or {}).get("token")
    try:
        websocket.connect(event.connection_id, token, event.domain_name, event.stage)
    except DynaveraError as err:
        refused = error_response(err)  # 401, or 429 with Retry-After at the connections limit
        return {"statusCode": refused.status_code, "headers": refused.headers, "body": json.dumps(refused.body)}
    return {"statusCode": 200}


@app.on_ws_message()
def ws_message(event: WebsocketEvent) -> None:
    websocket.handle_frame(event.connection_id, event.body)


@app.on_ws_disconnect()
def ws_disconnect(event: WebsocketEvent) -> None:
    websocket.disconnect(event.connection_id)


@app.on_sqs_message(queue=settings.runs_queue_name, batch_size=1, maximum_concurrency=capacity.EXECUTOR_CONCURRENCY)
def run_executions(event: SQSEvent) -> dict[str, Any]:
    """One message per invocation (aws/chalice#2029: no ReportBatchItemFailures on the mapping);
    a failed record raises, so SQS redelivers it and finally sends it to the DLQ. The event
    source caps the invocations at once, so a burst waits in the queue, not in the runtime."""
    return executor.process_batch(event.to_dict())


@app.schedule(Rate(5, unit=Rate.MINUTES))
def sweep_stuck_executions(event: Any) -> dict[str, int]:
    return {"swept": executor.sweep_stuck_executions()}


@app.schedule(Rate(5, unit=Rate.MINUTES))
def sweep_stuck_documents(event: Any) -> dict[str, int]:
    return {"swept": documents.sweep_stuck_documents()}
