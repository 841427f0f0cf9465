"""The Kubernetes manifests under ``deploy/kubernetes/``: every overlay renders with
``kubectl kustomize`` and validates, offline, against the Kubernetes API schemas
(``kubernetes-validate``) and, for KEDA's kinds, against KEDA's own CRD schemas (vendored
in ``tests/deploy/keda/``). Then what the manifests promise: the worker holds no database
URL and no user token, the probes hit ``/healthz``, SIGTERM has time to give trials back,
the worker command lines parse with the real CLI, and the scaler reads a gauge that
``/metrics`` exports.

No cluster runs here: what is checked is the rendered objects, not a deployment."""

from __future__ import annotations

import base64
import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer
import yaml

from tests.deploy.conftest import parse_worker_command, worker_has_option

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
KEDA_SCHEMAS = Path(__file__).resolve().parent / "keda"
#: The Kubernetes version the manifests are validated for: the oldest one still supported
#: upstream when these were written, so that nothing newer slips in.
KUBERNETES_VERSION = "1.32.0"
OVERLAYS = sorted(path.name for path in (KUBERNETES / "overlays").iterdir() if path.is_dir())
TARGETS = ["base", *(f"overlays/{name}" for name in OVERLAYS)]

kubectl = shutil.which("kubectl")
# CI has kubectl, and a manifest CI could not render must fail it, not pass unseen.
pytestmark = pytest.mark.skipif(
    kubectl is None and not os.environ.get("CI"), reason="kubectl (for its kustomize) is not installed"
)


@functools.cache
def render(target: str) -> tuple[dict[str, Any], ...]:
    """The objects ``kubectl kustomize`` renders for ``target`` (a folder under
    deploy/kubernetes)."""
    assert kubectl is not None, "kubectl is needed to render the manifests (its kustomize)"
    result = subprocess.run(
        [kubectl, "kustomize", str(KUBERNETES / target)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def by_kind(objects: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


@functools.cache
def keda_schema(kind: str) -> dict[str, Any]:
    files = {
        "ScaledObject": "scaledobjects",
        "ScaledJob": "scaledjobs",
        "TriggerAuthentication": "triggerauthentications",
    }
    crd = yaml.safe_load((KEDA_SCHEMAS / f"{files[kind]}.yaml").read_text())
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return strict(schema)


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with unknown fields refused wherever it lists an object's fields, as the
    API server's strict field validation (kubectl's default) refuses them, rather than
    JSON Schema's default of letting them through."""
    result = {key: value for key, value in schema.items()}
    if "properties" in result:
        result["properties"] = {name: strict(sub) for name, sub in result["properties"].items()}
        if not result.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in result:
            result["additionalProperties"] = False
    for key in ("items", "additionalProperties"):
        if isinstance(result.get(key), dict):
            result[key] = strict(result[key])
    return result


def validate(obj: dict[str, Any]) -> None:
    """Raise when ``obj`` does not fit its kind's schema: Kubernetes' own for the built-in
    kinds (unknown fields refused), KEDA's CRD schema for ``keda.sh`` kinds."""
    import kubernetes_validate

    if obj["apiVersion"].startswith("keda.sh/"):
        jsonschema.validate(obj, keda_schema(obj["kind"]))
        if obj["kind"] == "ScaledJob":
            # The part of KEDA's schema left out of the vendored copy: a batch/v1 JobSpec.
            job = {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": "x"},
                "spec": obj["spec"]["jobTargetRef"],
            }
            kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)
        return
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("target", TARGETS)
def test_every_overlay_renders_and_fits_the_schemas(target: str) -> None:
    objects = render(target)
    assert objects
    for obj in objects:
        try:
            validate(obj)
        except Exception as error:  # the validators' own error types; the message says what
            pytest.fail(f"{target}: {obj['kind']} {obj['metadata']['name']}: {error}")


def test_a_broken_manifest_is_caught() -> None:
    """The validation rejects what a cluster would: a misspelt field, a wrong type, an
    unknown field in a KEDA object."""
    import kubernetes_validate

    deployment = dict(by_kind(render("base"), "Deployment")["hypersweep-api"])
    misspelt = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(misspelt)
    wrong_type = {**deployment, "spec": {**deployment["spec"], "replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(wrong_type)
    scaled = dict(by_kind(render("overlays/keda"), "ScaledObject")["hypersweep-worker"])
    with pytest.raises(jsonschema.ValidationError):
        validate({**scaled, "spec": {**scaled["spec"], "minReplicas": 0}})
    with pytest.raises(jsonschema.ValidationError):
        validate({**scaled, "spec": {**scaled["spec"], "triggers": [{"metadata": {}}]}})  # no type


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj["spec"]
    template = spec["jobTargetRef"]["template"] if obj["kind"] == "ScaledJob" else spec["template"]
    result: list[dict[str, Any]] = template["spec"]["containers"]
    return result


def env_names(container: dict[str, Any]) -> set[str]:
    return {entry["name"] for entry in container.get("env", [])}


def secret_refs(container: dict[str, Any]) -> set[tuple[str, str]]:
    """(secret, key) pairs a container reads."""
    refs = set()
    for entry in container.get("env", []):
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            refs.add((ref["name"], ref["key"]))
    return refs


def workers(objects: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    found = [
        obj for obj in objects if obj["kind"] in ("Deployment", "ScaledJob") and "worker" in obj["metadata"]["name"]
    ]
    assert found, "no workers"
    return found


@pytest.mark.parametrize("target", TARGETS)
def test_workers_hold_the_worker_token_only(target: str) -> None:
    for worker in workers(render(target)):
        [container] = containers(worker)
        names = env_names(container)
        assert "HYPERSWEEP_WORKER_TOKEN" in names
        assert not names & {"HYPERSWEEP_DATABASE_URL", "HYPERSWEEP_TOKEN"}
        assert secret_refs(container) == {("hypersweep-worker", "worker-token")}
        assert not container.get("envFrom")


@pytest.mark.parametrize("target", TARGETS)
def test_worker_command_lines_parse_with_the_real_cli(target: str) -> None:
    for worker in workers(render(target)):
        [container] = containers(worker)
        argv = [*container["command"], *container.get("args", [])]
        assert argv[:2] == ["hypersweep", "worker"]
        if "--exit-when-idle" in argv and not worker_has_option("--exit-when-idle"):
            pytest.skip("this build of `hypersweep worker` has no --exit-when-idle option yet")
        params = parse_worker_command(argv[2:])
        assert params["concurrency"] == 1
        if worker["kind"] == "ScaledJob":
            assert params["exit_when_idle"] and float(params["exit_when_idle"]) > 0


def test_a_worker_command_line_with_an_unknown_option_is_refused() -> None:
    with pytest.raises(typer.TyperException, match="--concurency"):
        parse_worker_command(["--concurency", "1"])
    with pytest.raises(typer.TyperException, match="greater than or equal to 1"):
        parse_worker_command(["--concurrency", "0"])


def test_the_api_runs_two_replicas_probed_on_healthz_with_its_tokens_from_a_secret() -> None:
    objects = render("base")
    api = by_kind(objects, "Deployment")["hypersweep-api"]
    assert api["spec"]["replicas"] == 2
    [container] = containers(api)
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert secret_refs(container) == {
        ("hypersweep-server", "database-url"),
        ("hypersweep-server", "token"),
        ("hypersweep-server", "worker-token"),
    }
    service = by_kind(objects, "Service")["hypersweep-api"]
    assert service["spec"]["selector"].items() <= api["spec"]["template"]["metadata"]["labels"].items()
    [port] = service["spec"]["ports"]
    assert port["port"] == 8000
    migrate = by_kind(objects, "Job")["hypersweep-migrate"]
    [job_container] = containers(migrate)
    assert job_container["command"] == ["hypersweep", "db", "upgrade"]
    assert secret_refs(job_container) == {("hypersweep-server", "database-url")}


def test_workers_have_time_to_give_their_trial_back() -> None:
    """SIGTERM stops a trial at its epoch's end and releases it; the pod must not be killed
    before: more than Kubernetes' default 30 s, and more than a program's --grace."""
    for target in TARGETS:
        for worker in workers(render(target)):
            spec = worker["spec"]
            template = spec["jobTargetRef"]["template"] if worker["kind"] == "ScaledJob" else spec["template"]
            assert template["spec"]["terminationGracePeriodSeconds"] >= 120, target


def test_the_gpu_overlay_asks_for_a_gpu_and_uses_it() -> None:
    worker = by_kind(render("overlays/gpu"), "Deployment")["hypersweep-worker"]
    [container] = containers(worker)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    params = parse_worker_command([*container["command"], *container["args"]][2:])
    assert params["devices"] == "all"
    assert container["image"].startswith("hypersweep-worker-cuda")


def test_the_postgres_overlay_serves_the_database_the_secret_names() -> None:
    from sqlalchemy.engine import make_url

    objects = render("overlays/postgres")
    statefulset = by_kind(objects, "StatefulSet")["hypersweep-postgres"]
    service = by_kind(objects, "Service")["hypersweep-postgres"]
    secrets = by_kind(objects, "Secret")
    secret = secrets["hypersweep-server"]

    url = make_url(base64.b64decode(secret["data"]["database-url"]).decode())
    assert url.host == service["metadata"]["name"] and url.port == service["spec"]["ports"][0]["port"]
    [container] = containers(statefulset)
    env = {entry["name"]: entry for entry in container["env"]}
    assert env["POSTGRES_USER"]["value"] == url.username and env["POSTGRES_DB"]["value"] == url.database
    assert secrets["hypersweep-worker"]["data"] == {"worker-token": secret["data"]["worker-token"]}
    password = base64.b64decode(
        secrets[env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"]]["data"]["password"]
    )
    assert password.decode() == url.password


@pytest.mark.parametrize("overlay", ["keda", "keda-jobs"])
def test_the_scaler_reads_the_metrics_endpoint_with_the_worker_token(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    [scaled] = [obj for obj in objects if obj["kind"] in ("ScaledObject", "ScaledJob")]
    [trigger] = scaled["spec"]["triggers"]
    meta = trigger["metadata"]
    assert trigger["type"] == "metrics-api" and meta["format"] == "prometheus"
    # The URL is the API's Service in the namespace it was rendered into.
    service = by_kind(objects, "Service")["hypersweep-api"]
    name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
    assert meta["url"] == f"http://{name}.{namespace}.svc.cluster.local:{service['spec']['ports'][0]['port']}/metrics"
    assert meta["valueLocation"] == 'hypersweep_worker_slots_wanted{program=""}'
    assert float(meta["targetValue"]) > 0
    auth = by_kind(objects, "TriggerAuthentication")[trigger["authenticationRef"]["name"]]
    [ref] = auth["spec"]["secretTargetRef"]
    assert meta["authMode"] == "bearer" and ref["parameter"] == "bearerToken"
    assert (ref["name"], ref["key"]) == ("hypersweep-worker", "worker-token")
    if scaled["kind"] == "ScaledObject":
        target = by_kind(objects, "Deployment")[scaled["spec"]["scaleTargetRef"]["name"]]
        assert "replicas" not in target["spec"], "KEDA owns the replica count"
    else:
        assert "hypersweep-worker" not in by_kind(objects, "Deployment")
