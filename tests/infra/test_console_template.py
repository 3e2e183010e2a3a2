"""infra/console.yaml: the console's bucket is private and read only by its CloudFront
distribution through Origin Access Control; deep links serve index.html."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from tests.infra.conftest import template


@pytest.fixture(scope="module")
def console() -> dict[str, Any]:
    return template("console.yaml")


def test_bucket_is_private_and_serves_no_website(console: dict[str, Any]) -> None:
    bucket = console["Resources"]["ConsoleBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert "WebsiteConfiguration" not in bucket
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]


def test_only_the_distribution_reads_the_bucket_through_origin_access_control(console: dict[str, Any]) -> None:
    resources = console["Resources"]
    origin = resources["ConsoleDistribution"]["Properties"]["DistributionConfig"]["Origins"]
    assert len(origin) == 1
    assert origin[0]["OriginAccessControlId"] == "ConsoleOriginAccessControl.Id"  # !GetAtt, read as its plain value
    assert origin[0]["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    oac = resources["ConsoleOriginAccessControl"]["Properties"]["OriginAccessControlConfig"]
    assert (oac["SigningBehavior"], oac["OriginAccessControlOriginType"]) == ("always", "s3")
    allows = [
        s
        for s in resources["ConsoleBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Allow"
    ]
    assert len(allows) == 1
    assert allows[0]["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert allows[0]["Action"] == "s3:GetObject"
    assert "${ConsoleDistribution}" in json.dumps(allows[0]["Condition"]["StringEquals"]["AWS:SourceArn"])


def test_viewers_use_https_and_the_origin_output_is_the_cors_setting(console: dict[str, Any]) -> None:
    behaviour = console["Resources"]["ConsoleDistribution"]["Properties"]["DistributionConfig"]["DefaultCacheBehavior"]
    assert behaviour["ViewerProtocolPolicy"] == "redirect-to-https"
    assert behaviour["AllowedMethods"] == ["GET", "HEAD"]
    assert "CONSOLE_ORIGIN" in console["Outputs"]["ConsoleOrigin"]["Description"]


@pytest.mark.skipif(shutil.which("node") is None, reason="node runs the CloudFront function here")
@pytest.mark.parametrize(
    ("uri", "served"),
    [
        ("/console/", "/console/index.html"),
        ("/console/agents", "/console/index.html"),
        ("/console/executions/0b6f6f0e-2d55-4f7c-9a0e-0d7f0f9c1a11", "/console/index.html"),
        ("/console/assets/index-abc123.js", "/console/assets/index-abc123.js"),
        ("/console/config.json", "/console/config.json"),
        ("/", "301 /console/"),
        ("/console", "301 /console/"),
    ],
)
def test_routing_function_serves_index_for_deep_links(console: dict[str, Any], uri: str, served: str) -> None:
    code = console["Resources"]["ConsoleRouting"]["Properties"]["FunctionCode"]
    probe = code + (
        f"\nconst out = handler({{ request: {{ uri: {json.dumps(uri)} }} }});"
        "\nconsole.log(out.statusCode ? out.statusCode + ' ' + out.headers.location.value : out.uri);"
    )
    done = subprocess.run(["node", "-e", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == served


def test_cloudfront_sends_the_consoles_own_security_headers_as_the_local_gateway_does(console: dict[str, Any]) -> None:
    from deploy.console import upload_origins
    from local.console import content_security_policy, security_headers

    behaviour = console["Resources"]["ConsoleDistribution"]["Properties"]["DistributionConfig"]["DefaultCacheBehavior"]
    assert behaviour["ResponseHeadersPolicyId"] == "ConsoleHeaders"  # !Ref: a policy of our own, not a managed one
    policy_config = console["Resources"]["ConsoleHeaders"]["Properties"]["ResponseHeadersPolicyConfig"]
    config = policy_config["SecurityHeadersConfig"]
    api, ws = "https://abc123.execute-api.eu-west-1.amazonaws.com", "wss://def456.execute-api.eu-west-1.amazonaws.com"
    policy = config["ContentSecurityPolicy"]["ContentSecurityPolicy"]
    uploads = upload_origins("dynavera-dev-documents-123456789012", "eu-west-1")
    rendered = policy.replace("${ApiOrigin}", api).replace("${WebSocketOrigin}", ws)
    rendered = rendered.replace("${UploadOrigins}", uploads)
    assert rendered == content_security_policy(f"{api}/dev", f"{ws}/dev", uploads)
    local = security_headers(api, ws)
    assert config["FrameOptions"]["FrameOption"] == local["X-Frame-Options"]
    assert config["ReferrerPolicy"]["ReferrerPolicy"] == local["Referrer-Policy"]
    assert config["ContentTypeOptions"] == {"Override": True}
    assert all(header["Override"] for header in config.values())
    assert {"ApiOrigin", "WebSocketOrigin", "UploadOrigins"} <= set(console["Parameters"])
