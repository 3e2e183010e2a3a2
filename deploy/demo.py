"""`make deploy DEMO=1`: a demo user on the stage, and the shipped corpus (mcp_container/corpus)
uploaded into its `fnirs` collection through the stage's own API, the way any user adds
documents: nothing is baked into an image or written behind the API's back."""

from __future__ import annotations

from pathlib import Path

from cli import upload
from contract import DEMO_COLLECTION
from deploy.plan import ROOT, DeployError, Plan

CORPUS = ROOT / "mcp_container" / "corpus"
DEMO_USER = "demo"
# Indexing waits for the indexer to scale out from zero (a few minutes), then ~33 chunks/s.
WAIT_SECONDS = 900.0


def key_file(plan: Plan) -> Path:
    return plan.out_dir / "demo_api_key"


def demo_key(plan: Plan) -> str:
    """The demo user's key: minted once with the operator's credentials, then kept, so a
    redeploy neither piles up keys nor uploads the unchanged corpus again."""
    path = key_file(plan)
    if path.is_file():
        return path.read_text().strip()
    from chalicelib.keys import create_api_key
    from chalicelib.settings import Settings
    from chalicelib.wiring import wire

    wire(Settings.from_env({"DYNAVERA_STAGE": plan.stage, "AWS_REGION": plan.region}))
    key, _ = create_api_key(DEMO_USER, "demo")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(key + "\n")
    return key


def upload_corpus(plan: Plan) -> None:
    plan.say(f"\n[demo] the shipped corpus into {DEMO_USER}'s {DEMO_COLLECTION} collection, through the API")
    corpus = str(CORPUS.relative_to(ROOT))
    kept = f"kept in {key_file(plan).relative_to(ROOT)}"
    plan.show(["./dynavera", "keys", "create", DEMO_USER, "--stage", plan.stage], kept)
    plan.show(["./dynavera", "collections", "create", DEMO_COLLECTION])
    plan.show(["./dynavera", "upload", corpus, "--collection", DEMO_COLLECTION])
    if plan.dry_run:
        return
    api_url = plan.stack_outputs("app")["EndpointURL"]
    key = demo_key(plan)
    try:
        upload.ensure_collection(api_url, key, DEMO_COLLECTION, "The fNIRS corpus shipped with Dynavera.")
        files = upload.upload_paths(
            api_url, key, DEMO_COLLECTION, [CORPUS], progress=_say(plan), wait_seconds=WAIT_SECONDS
        )
    except upload.UploadError as err:
        raise DeployError(f"The demo corpus could not be uploaded: {err}") from err
    failed = [f for f in files if f.error]
    if failed:
        named = ", ".join(f"{f.path.name} ({(f.error or {}).get('code')})" for f in failed)
        raise DeployError(f"The stage is deployed, but these demo files were not indexed: {named}.")
    plan.say(f"  {len(files)} files in {DEMO_COLLECTION}; the {DEMO_USER} user's key is in {key_file(plan)}")


def _say(plan: Plan) -> upload.Progress:
    def report(file: upload.FileUpload) -> None:
        chunks = f" {file.chunks_done}/{file.chunks_total} chunks" if file.chunks_total else ""
        error = f" {file.error['code']}: {file.error['message']}" if file.error else ""
        plan.say(f"  {file.path.name}: {file.status}{chunks}{error}")

    return report
