"""The runtime image: tagged by the content of its build context, pushed only when that tag is
not in the repository yet (its tags are immutable, so a second push of one tag would fail)."""

from __future__ import annotations

import base64
import fnmatch
import hashlib
from pathlib import Path

from deploy.plan import ROOT, Plan

CONTEXT = ROOT / "mcp_container"
# Named build contexts the Dockerfile copies from (`COPY --from=contract`): the shared contract.
NAMED_CONTEXTS = {"contract": ROOT / "contract"}


def _ignored(relative: str, patterns: list[str]) -> bool:
    parts = relative.split("/")
    return any(
        fnmatch.fnmatch(relative, p) or any(fnmatch.fnmatch(part, p.rstrip("/")) for part in parts) for p in patterns
    )


def content_tag(context: Path = CONTEXT, named: dict[str, Path] = NAMED_CONTEXTS) -> str:
    """A tag that changes exactly when a file the build sees changes: the build context
    (.dockerignore honoured) and the named contexts (the same patterns ignored)."""
    ignore_file = context / ".dockerignore"
    patterns = (
        [line.strip() for line in ignore_file.read_text().splitlines() if line.strip() and not line.startswith("#")]
        if ignore_file.exists()
        else []
    )
    digest = hashlib.sha256()
    for prefix, root in [("", context), *((f"{name}:", path) for name, path in sorted(named.items()))]:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            relative = path.relative_to(root).as_posix()
            if _ignored(relative, patterns):
                continue
            digest.update((prefix + relative).encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return "c" + digest.hexdigest()[:16]


def build_command(image: str) -> list[str]:
    """`docker build` of the runtime image, with the named contexts its Dockerfile copies from."""
    named = [f"--build-context={name}={path.relative_to(ROOT)}" for name, path in sorted(NAMED_CONTEXTS.items())]
    return ["docker", "build", "--platform", "linux/amd64", *named, "--tag", image, "mcp_container"]


def image_exists(plan: Plan, repository: str, tag: str) -> bool:
    ecr = plan.client("ecr")
    try:
        ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
    except ecr.exceptions.ImageNotFoundException:
        return False
    return True


def publish_image(plan: Plan, repository_name: str, repository_uri: str, tag: str) -> None:
    """Build and push `repository_uri:tag` unless the repository already holds that tag."""
    image = f"{repository_uri}:{tag}"
    plan.show(
        ["aws", "ecr", "describe-images", "--repository-name", repository_name, "--image-ids", f"imageTag={tag}"],
        "skip the rest when it exists",
    )
    if not plan.dry_run and image_exists(plan, repository_name, tag):
        plan.say(f"  {image} is already in the repository: not built again")
        return
    registry = repository_uri.split("/", 1)[0]
    password = None
    if not plan.dry_run:
        token = plan.client("ecr").get_authorization_token()["authorizationData"][0]["authorizationToken"]
        password = base64.b64decode(token).decode().partition(":")[2]
    plan.say("  $ aws ecr get-login-password | docker login --username AWS --password-stdin " + registry)
    if not plan.dry_run:
        assert plan.run_command is not None
        plan.run_command(["docker", "login", "--username", "AWS", "--password-stdin", registry], ROOT, password, {})
    plan.command(build_command(image))
    plan.command(["docker", "push", image])


def delete_images(plan: Plan) -> None:
    """Empty the repository before its stack goes (EmptyOnDelete does it too, where honoured)."""
    name = f"dynavera-{plan.stage}-runtime"
    plan.show(["aws", "ecr", "batch-delete-image", "--repository-name", name, "--image-ids", "<every image>"])
    if plan.dry_run:
        return
    ecr = plan.client("ecr")
    try:
        for page in ecr.get_paginator("list_images").paginate(repositoryName=name):
            if page["imageIds"]:
                ecr.batch_delete_image(repositoryName=name, imageIds=page["imageIds"])
    except ecr.exceptions.RepositoryNotFoundException:
        return
