"""The HTTP API: every route of the manifest, behind the Lambda authorizer unless the route is public."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import jsii
from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from earshot.routes import Route
from infra.constants import AUTHORIZATION_IDENTITY_SOURCE, AUTHORIZER_CACHE_TTL_SEC
from infra.nag import acknowledge
from infra.naming import resource_name

# One JSON object per request. The caller appears by key id (from the authorizer's context), never by key.
ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTime",
    "ip": "$context.identity.sourceIp",
    "userAgent": "$context.identity.userAgent",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "integrationStatus": "$context.integrationStatus",
    "integrationError": "$context.integrationErrorMessage",
    "authorizerError": "$context.authorizer.error",
    "keyId": "$context.authorizer.key_id",
    "accountId": "$context.authorizer.account_id",
}


class Api(Construct):
    """An HTTP API whose routes come from ``earshot.routes.ROUTES``, with access logs and default throttling."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        routes: Sequence[Route],
        functions: Mapping[str, lambda_.IFunction],
        authorizer_function: lambda_.IFunction,
        throttle_rate_limit: float,
        throttle_burst_limit: int,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.http_api = apigwv2.HttpApi(
            self,
            "HttpApi",
            api_name=resource_name(stage),
            description=f"Earshot {stage}",
            create_default_stage=False,  # the default stage below carries access logs and throttling
        )
        self.access_logs = logs.LogGroup(self, "AccessLogs", retention=log_retention, removal_policy=removal_policy)
        self.stage = self.http_api.add_stage(
            "DefaultStage",
            stage_name="$default",
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(rate_limit=throttle_rate_limit, burst_limit=throttle_burst_limit),
            access_log_settings=_AccessLogSettings(self.access_logs),
        )
        self.authorizer = authorizers.HttpLambdaAuthorizer(
            "KeyAuthorizer",
            authorizer_function,
            authorizer_name=resource_name(stage, "keys"),
            response_types=[authorizers.HttpLambdaResponseType.SIMPLE],
            identity_source=[AUTHORIZATION_IDENTITY_SOURCE],
            results_cache_ttl=Duration.seconds(AUTHORIZER_CACHE_TTL_SEC),
        )
        # One integration per function that serves routes (the authorizer serves none), shared by its routes.
        self.integrations = {
            name: integrations.HttpLambdaIntegration(f"{name}-integration", functions[name])
            for name in sorted({route.function for route in routes})
        }
        self.routes = [self._add_route(route) for route in routes]

    @property
    def url(self) -> str:
        url = self.stage.url
        assert url is not None  # a named stage always has one
        return url

    def _add_route(self, route: Route) -> apigwv2.HttpRoute:
        (http_route,) = self.http_api.add_routes(
            path=route.path,
            methods=[apigwv2.HttpMethod(route.method)],
            integration=self.integrations[route.function],
            authorizer=self.authorizer if route.auth else apigwv2.HttpNoneAuthorizer(),
        )
        if not route.auth:
            acknowledge(
                http_route,
                "AwsSolutions-APIG4",
                f"{route.method} {route.path} is public by design (route manifest: auth=False): {route.summary}",
            )
        return http_route


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogSettings:
    """``IAccessLogSettings``: JSON access logs to a CloudWatch log group."""

    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._destination = apigwv2.LogGroupLogDestination(log_group)
        self._format = apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FORMAT, separators=(",", ":")))

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return self._format
