"""The edge's request rate per API key (deploy/edge.py): a WAF rate rule on the REST API's stage,
keyed on the Authorization header, refusing with 429 and Retry-After in the contract's shape,
at the limit the local gateway plays (chalicelib/limits.py)."""

from __future__ import annotations

import json

import pytest

from chalicelib.limits import RATE_WINDOW_SECONDS, Limits
from deploy import edge
from tests.infra.conftest import DryRun

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS::")


def test_the_rest_apis_stage_has_a_rate_rule_per_api_key(dry_run: DryRun) -> None:
    resources = dry_run.template["Resources"]
    acl = resources[edge.WEB_ACL]["Properties"]
    assert acl["Scope"] == "REGIONAL" and acl["DefaultAction"] == {"Allow": {}}
    (rule,) = acl["Rules"]
    rate = rule["Statement"]["RateBasedStatement"]
    assert rate["Limit"] == Limits().requests_per_window
    assert rate["EvaluationWindowSec"] == RATE_WINDOW_SECONDS
    assert rate["AggregateKeyType"] == "CUSTOM_KEYS"
    header = {"Name": "authorization", "TextTransformations": [edge.NO_TRANSFORMATION]}
    assert rate["CustomKeys"] == [{"Header": header}]
    refusal = rule["Action"]["Block"]["CustomResponse"]
    assert refusal["ResponseCode"] == 429
    assert {"Name": "Retry-After", "Value": str(RATE_WINDOW_SECONDS)} in refusal["ResponseHeaders"]
    body = json.loads(acl["CustomResponseBodies"][refusal["CustomResponseBodyKey"]]["Content"])
    assert body["error"]["code"] == "rate_limit" and str(Limits().requests_per_window) in body["error"]["message"]
    association = resources[edge.ASSOCIATION]["Properties"]
    assert association["WebACLArn"] == {"Fn::GetAtt": [edge.WEB_ACL, "Arn"]}
    assert "${RestAPI}" in association["ResourceArn"]["Fn::Sub"] and "RestAPI" in resources


def test_a_stage_may_set_its_own_rate() -> None:
    acl = edge.resources("dev", {"DYNAVERA_LIMIT_REQUESTS_PER_WINDOW": "120"})[edge.WEB_ACL]
    assert acl["Properties"]["Rules"][0]["Statement"]["RateBasedStatement"]["Limit"] == 120
    with pytest.raises(ValueError, match="DYNAVERA_LIMIT_REQUESTS_PER_WINDOW"):
        edge.resources("dev", {"DYNAVERA_LIMIT_REQUESTS_PER_WINDOW": "-1"})
