"""The HTTP API serves exactly the route manifest, behind the Lambda authorizer unless a route is public."""

from __future__ import annotations

import json
from typing import Any

from infra_synth import Synthesized

from earshot.routes import ROUTES
from infra.constants import AUTHORIZATION_IDENTITY_SOURCE


def _only(resources: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    assert len(resources) == 1, sorted(resources)
    return next(iter(resources.items()))


def _integration_function(synth: Synthesized, route: dict[str, Any]) -> str:
    """The logical id of the Lambda function a route's integration invokes."""
    integration_id = route["Properties"]["Target"]["Fn::Join"][1][1]["Ref"]
    uri = synth.resources[integration_id]["Properties"]["IntegrationUri"]
    logical_id: str = uri["Fn::GetAtt"][0]
    return logical_id


def test_every_manifest_route_exists_and_no_other(synthesized: Synthesized) -> None:
    route_keys = {r["Properties"]["RouteKey"] for r in synthesized.of_type("AWS::ApiGatewayV2::Route").values()}
    assert route_keys == {f"{route.method} {route.path}" for route in ROUTES}


def test_routes_invoke_the_function_the_manifest_names(synthesized: Synthesized) -> None:
    routes = {r["Properties"]["RouteKey"]: r for r in synthesized.of_type("AWS::ApiGatewayV2::Route").values()}
    for route in ROUTES:
        deployed = routes[f"{route.method} {route.path}"]
        assert _integration_function(synthesized, deployed) == synthesized.function_logical_id(route.function)


def test_protected_routes_use_the_lambda_authorizer_and_openapi_is_public(synthesized: Synthesized) -> None:
    authorizer_id, _ = _only(synthesized.of_type("AWS::ApiGatewayV2::Authorizer"))
    routes = {
        r["Properties"]["RouteKey"]: r["Properties"] for r in synthesized.of_type("AWS::ApiGatewayV2::Route").values()
    }
    for route in ROUTES:
        deployed = routes[f"{route.method} {route.path}"]
        if route.auth:
            assert deployed["AuthorizationType"] == "CUSTOM", route.path
            assert deployed["AuthorizerId"] == {"Ref": authorizer_id}, route.path
        else:
            assert deployed.get("AuthorizationType", "NONE") == "NONE", route.path
            assert "AuthorizerId" not in deployed
    assert routes["GET /openapi.json"].get("AuthorizationType", "NONE") == "NONE"


def test_authorizer_answers_simply_and_caches_at_most_a_minute(synthesized: Synthesized) -> None:
    _, authorizer = _only(synthesized.of_type("AWS::ApiGatewayV2::Authorizer"))
    props = authorizer["Properties"]
    assert props["AuthorizerType"] == "REQUEST"
    assert props["AuthorizerPayloadFormatVersion"] == "2.0"
    assert props["EnableSimpleResponses"] is True
    assert props["IdentitySource"] == [AUTHORIZATION_IDENTITY_SOURCE]
    assert 0 < props["AuthorizerResultTtlInSeconds"] <= 60
    uri_parts = props["AuthorizerUri"]["Fn::Join"][1]
    assert {"Fn::GetAtt": [synthesized.function_logical_id("authorizer"), "Arn"]} in uri_parts


def test_only_api_gateway_may_invoke_the_functions_and_only_their_routes(synthesized: Synthesized) -> None:
    permissions = synthesized.of_type("AWS::Lambda::Permission").values()
    api_permissions = [
        p["Properties"] for p in permissions if p["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]
    assert len(api_permissions) == len(ROUTES) + 1  # one per route, plus the authorizer
    for permission in api_permissions:
        assert permission["Action"] == "lambda:InvokeFunction"
        assert "SourceArn" in permission


def test_default_stage_logs_json_and_throttles_per_stage_config(synthesized: Synthesized) -> None:
    _, stage = _only(synthesized.of_type("AWS::ApiGatewayV2::Stage"))
    props = stage["Properties"]
    assert props["StageName"] == "$default"
    assert props["AutoDeploy"] is True
    access_log = json.loads(props["AccessLogSettings"]["Format"])
    assert access_log["requestId"] == "$context.requestId"
    assert access_log["keyId"] == "$context.authorizer.key_id"
    assert not any("authorization" in value.lower() for value in access_log.values() if "header" in value.lower())
    log_group_id = props["AccessLogSettings"]["DestinationArn"]["Fn::GetAtt"][0]
    assert synthesized.resources[log_group_id]["Type"] == "AWS::Logs::LogGroup"
    assert props["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": synthesized.config.throttle_burst_limit,
        "ThrottlingRateLimit": synthesized.config.throttle_rate_limit,
    }


def test_outputs_name_the_api_url_bucket_and_state_machine(dev: Synthesized) -> None:
    outputs = dev.template.to_json()["Outputs"]
    assert set(outputs) == {"ApiUrl", "BucketName", "TaskStateMachineArn"}
