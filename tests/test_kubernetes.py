"""deploy/kubernetes: renders, every object valid against the Kubernetes schemas (offline),
and wired as docs/operations.md says."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
KUSTOMIZE = ROOT / "deploy" / "kubernetes"
WITH_PGBOUNCER = KUSTOMIZE / "overlays" / "with-pgbouncer"
KUBERNETES_VERSION = "1.30.0"  # the oldest release still supported upstream when written
# What each workload may read of the secrets, and nothing more.
SECRET_KEYS = {
    "tessera-account-api": {"DATABASE_URL", "TOKEN_PRIVATE_KEY", "TOKEN_PUBLIC_KEY"},
    "tessera-certificate-api": {"DATABASE_URL", "MASTER_KEYS", "TOKEN_PUBLIC_KEY"},
    "tessera-worker": {"DATABASE_URL", "DATABASE_DIRECT_URL", "WEBHOOK_SECRET"},
    "tessera-migrate": {"DATABASE_DIRECT_URL"},
}


def render_simply(directory: Path) -> list[dict[str, Any]]:
    """The features of kustomize these files use (resources, components, images, labels),
    for machines without kubectl; a test holds it to `kubectl kustomize` where both exist."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    objects: list[dict[str, Any]] = []
    for entry in spec.get("resources", []) + spec.get("components", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            objects += render_simply(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for image in spec.get("images", []):
        for obj in objects:
            for container in _pod(obj).get("containers", []):
                if container["image"] == image["name"]:
                    name = image.get("newName", image["name"])
                    container["image"] = f"{name}:{image['newTag']}"
    for label in spec.get("labels", []):
        for obj in objects:
            obj["metadata"].setdefault("labels", {}).update(label["pairs"])
    return objects


def render(directory: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize` where kubectl is installed, else `render_simply`."""
    if shutil.which("kubectl") is None:
        return render_simply(directory)
    out = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, check=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def _pod(obj: dict[str, Any]) -> dict[str, Any]:
    template = obj.get("spec", {}).get("template", {})
    spec: dict[str, Any] = template.get("spec", {})
    return spec


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return render(KUSTOMIZE)


@pytest.mark.parametrize("directory", [KUSTOMIZE, WITH_PGBOUNCER], ids=["base", "pgbouncer"])
def test_every_object_validates_against_the_kubernetes_schemas(directory: Path) -> None:
    objects = render(directory)
    assert objects
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="compares with kubectl's rendering")
def test_the_simple_renderer_agrees_with_kubectl() -> None:
    for directory in (KUSTOMIZE, WITH_PGBOUNCER):

        def key(obj: dict[str, Any]) -> str:
            return f"{obj['kind']}/{obj['metadata']['name']}"

        simple = sorted(render_simply(directory), key=key)
        assert simple == sorted(render(directory), key=key)


def test_workloads_probes_budgets_and_autoscalers(base: list[dict[str, Any]]) -> None:
    deployments = by_kind(base, "Deployment")
    assert set(deployments) == {"tessera-account-api", "tessera-certificate-api", "tessera-worker"}
    assert set(by_kind(base, "Service")) == {"tessera-account-api", "tessera-certificate-api"}
    assert set(by_kind(base, "Job")) == {"tessera-migrate"}
    assert by_kind(base, "Job")["tessera-migrate"]["spec"]["template"]["spec"]["containers"][0][
        "command"
    ] == ["ca-admin", "migrate"]
    budgets = {
        b["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        for b in by_kind(base, "PodDisruptionBudget").values()
    }
    scaled = {
        h["spec"]["scaleTargetRef"]["name"]
        for h in by_kind(base, "HorizontalPodAutoscaler").values()
    }
    assert budgets == scaled == set(deployments)
    for name in ("tessera-account-api", "tessera-certificate-api"):
        container = _pod(deployments[name])["containers"][0]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert deployments[name]["spec"]["replicas"] >= 2


def test_containers_are_non_root_and_read_only(base: list[dict[str, Any]]) -> None:
    for obj in base:
        pod = _pod(obj)
        if not pod:
            continue
        assert pod["securityContext"]["runAsNonRoot"] is True, obj["metadata"]["name"]
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]


def test_each_workload_reads_only_its_own_secret_keys(base: list[dict[str, Any]]) -> None:
    workloads = {**by_kind(base, "Deployment"), **by_kind(base, "Job")}
    assert set(workloads) == set(SECRET_KEYS)
    for name, obj in workloads.items():
        read: set[str] = set()
        for container in _pod(obj)["containers"]:
            assert all("secretRef" not in source for source in container.get("envFrom", []))
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == name  # its own Secret
                    read.add(ref["key"])
        assert read == SECRET_KEYS[name], name


def test_the_pgbouncer_component_has_the_shipped_limits() -> None:
    objects = render(WITH_PGBOUNCER)
    ini = by_kind(objects, "ConfigMap")["tessera-pgbouncer"]["data"]["pgbouncer.ini"]

    def settings(text: str) -> dict[str, str]:
        parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
        parser.read_string(text)
        return dict(parser["pgbouncer"])

    shipped = settings((ROOT / "deploy" / "pgbouncer.ini").read_text())
    component = settings(ini)
    for key in (
        "pool_mode",
        "max_client_conn",
        "default_pool_size",
        "reserve_pool_size",
        "max_db_connections",
        "query_wait_timeout",
        "idle_transaction_timeout",
    ):
        assert component[key] == shipped[key], key
    assert shipped["pool_mode"] == "transaction"
    assert (
        "ignore_startup_parameters" not in shipped and "ignore_startup_parameters" not in component
    )
