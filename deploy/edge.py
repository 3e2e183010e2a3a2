"""The request rate per API key at the edge: an AWS WAF web ACL on the REST API's stage with a
rate-based rule aggregated on the Authorization header, merged into the app's stack.

WAF was chosen over an API Gateway usage plan: a usage plan counts per API key only through
an authorizer's usageIdentifierKey, which would put a Lambda authorizer (and its cold start)
before every request; the WAF rule needs nothing of the app. It covers the REST API only — WAF
cannot sit before a WebSocket API, whose use is bounded by the connection and subscriber
limits instead. The limit is chalicelib/limits.py's, as the local gateway plays it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import contract
from chalicelib.errors import error_body
from chalicelib.limits import RATE_WINDOW_SECONDS, Limits
from chalicelib.settings import Settings

WEB_ACL = "RateLimitWebAcl"
ASSOCIATION = "RateLimitWebAclAssociation"
BODY_KEY = CODE = contract.RATE_LIMIT
NO_TRANSFORMATION = {"Priority": 0, "Type": "NONE"}
STAGE_ARN = "arn:aws:apigateway:${AWS::Region}::/restapis/${RestAPI}/stages/${RestAPI.Stage}"


def resources(stage: str, environment: Mapping[str, str]) -> dict[str, Any]:
    """The web ACL and its association with the REST API's stage (Chalice's `RestAPI`)."""
    limit = Limits().with_overrides(Settings.from_env(environment).limit_overrides).requests_per_window
    message = f"Over {limit} requests in {RATE_WINDOW_SECONDS} s with this API key; retry after Retry-After seconds."
    visibility = {"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True}
    rule = {
        "Name": "requests-per-api-key",
        "Priority": 0,
        "Statement": {
            "RateBasedStatement": {
                "Limit": limit,
                "EvaluationWindowSec": RATE_WINDOW_SECONDS,
                # A request without the header is not counted: the API refuses it with 401 anyway.
                "AggregateKeyType": "CUSTOM_KEYS",
                "CustomKeys": [{"Header": {"Name": "authorization", "TextTransformations": [NO_TRANSFORMATION]}}],
            }
        },
        "Action": {
            "Block": {
                "CustomResponse": {
                    "ResponseCode": 429,
                    "CustomResponseBodyKey": BODY_KEY,
                    # WAF re-evaluates a rate rule's window continuously; a window from now is an upper bound.
                    "ResponseHeaders": [{"Name": "Retry-After", "Value": str(RATE_WINDOW_SECONDS)}],
                }
            }
        },
        "VisibilityConfig": {**visibility, "MetricName": f"dynavera-{stage}-requests-per-api-key"},
    }
    return {
        WEB_ACL: {
            "Type": "AWS::WAFv2::WebACL",
            "Metadata": {
                "checkov": {
                    "skip": [
                        {
                            "id": "CKV_AWS_192",
                            "comment": "The API runs no Java (no Log4j to shield); this ACL is the per-key rate limit",
                        }
                    ]
                }
            },
            "Properties": {
                "Name": f"dynavera-{stage}-api",
                "Scope": "REGIONAL",
                "DefaultAction": {"Allow": {}},
                "CustomResponseBodies": {
                    BODY_KEY: {"ContentType": "APPLICATION_JSON", "Content": json.dumps(error_body(CODE, message))}
                },
                "Rules": [rule],
                "VisibilityConfig": {**visibility, "MetricName": f"dynavera-{stage}-api"},
            },
        },
        ASSOCIATION: {
            "Type": "AWS::WAFv2::WebACLAssociation",
            "Properties": {
                # RestAPI.Stage is SAM's reference to the stage it creates: the association waits for it.
                "ResourceArn": {"Fn::Sub": STAGE_ARN},
                "WebACLArn": {"Fn::GetAtt": [WEB_ACL, "Arn"]},
            },
        },
    }
