"""The web console in AWS: its stack (infra/console.yaml: a bucket behind CloudFront, outputs
ConsoleBucketName, DistributionId, ConsoleUrl), then its built files under the bucket's
`console/` prefix (CloudFront serves them at /console/) and the `config.json` that tells it the
API's URLs, then a CloudFront invalidation so browsers get them."""

from __future__ import annotations

import json
import mimetypes
import time
from pathlib import Path
from urllib.parse import urlsplit

from deploy.plan import INFRA, ROOT, Outputs, Plan
from deploy.stacks import deploy_stack

CONSOLE = ROOT / "console"
TEMPLATE = INFRA / "console.yaml"
# CloudFront serves the bucket's console/ objects at /console/ (infra/console.yaml).
PREFIX = "console/"
# Vite names the files under assets/ by their content: they may be cached for good.
IMMUTABLE = "public, max-age=31536000, immutable"
ALWAYS_CHECK = "no-cache"


def present() -> bool:
    return (CONSOLE / "package.json").is_file() and TEMPLATE.is_file()


def deploy_console_stack(plan: Plan, api_url: str = "", ws_url: str = "", bucket: str = "") -> Outputs:
    """The console's stack; with the API's URLs and the documents bucket, its
    Content-Security-Policy allows them (and nothing else)."""
    from cfnlint.decode import decode

    parsed, _ = decode(str(TEMPLATE))
    declared = (parsed or {}).get("Parameters", {})
    given = {
        "Stage": plan.stage,
        "ApiOrigin": origin(api_url),
        "WebSocketOrigin": origin(ws_url),
        "UploadOrigins": upload_origins(bucket, plan.region),
    }
    parameters = {name: value for name, value in given.items() if name in declared}
    return deploy_stack(plan, "console", parameters, template=TEMPLATE, capabilities=("CAPABILITY_IAM",))


def upload_origins(bucket: str, region: str) -> str:
    """Where a presigned POST from the API sends the browser: S3's virtual-hosted URL of the
    bucket, global in us-east-1 and regional elsewhere (both allowed, whichever botocore signs)."""
    if not bucket or bucket.startswith("<"):
        return ""
    return f"https://{bucket}.s3.amazonaws.com https://{bucket}.s3.{region}.amazonaws.com"


def origin(console_url: str) -> str:
    """What a browser sends as `Origin` from the console: scheme and host, no path."""
    if not console_url or console_url.startswith("<"):
        return console_url
    parts = urlsplit(console_url)
    return f"{parts.scheme}://{parts.netloc}"


def publish(plan: Plan, console: Outputs, api_url: str, ws_url: str, source: Path = CONSOLE) -> None:
    bucket = console["ConsoleBucketName"]
    plan.command(["npm", "ci"], cwd=source)
    plan.command(["npm", "run", "build"], cwd=source)
    dist = source / "dist"
    plan.show(["aws", "s3", "sync", "console/dist", f"s3://{bucket}/{PREFIX}", "--exclude", "config.json"])
    config = json.dumps({"apiUrl": api_url.rstrip("/"), "wsUrl": ws_url.rstrip("/")})
    plan.say(f"  $ echo '{config}' | aws s3 cp - s3://{bucket}/{PREFIX}config.json --cache-control {ALWAYS_CHECK}")
    plan.show(
        ["aws", "cloudfront", "create-invalidation", "--distribution-id", console["DistributionId"], "--paths", "/*"]
    )
    if plan.dry_run:
        return
    s3 = plan.client("s3")
    for path in sorted(p for p in dist.rglob("*") if p.is_file()):
        key = path.relative_to(dist).as_posix()
        if key != "config.json":
            s3.upload_file(str(path), bucket, PREFIX + key, ExtraArgs=_headers(key))
    s3.put_object(Bucket=bucket, Key=PREFIX + "config.json", Body=config.encode(), **_headers("config.json"))
    plan.client("cloudfront").create_invalidation(
        DistributionId=console["DistributionId"],
        InvalidationBatch={"Paths": {"Quantity": 1, "Items": ["/*"]}, "CallerReference": f"dynavera-{time.time_ns()}"},
    )


def _headers(key: str) -> dict[str, str]:
    content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
    if key.endswith((".js", ".mjs")):
        content_type = "text/javascript"
    cache = IMMUTABLE if key.startswith("assets/") else ALWAYS_CHECK
    return {"ContentType": content_type, "CacheControl": cache}
