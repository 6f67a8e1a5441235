"""Offline checks of the deployment files in deploy/ (chapter 15): Kubernetes manifests,
Dockerfile and Prometheus alert rules agree with each other and with
llmbook.deployment.serving."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from llmbook.deployment import write_manifest
from llmbook.deployment.serving import KEYS_VARIABLE, create_app
from llmbook.deployment.serving.probes import PROBE_PORT

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = {path.stem: yaml.safe_load(path.read_text()) for path in (DEPLOY / "k8s").glob("*.yaml")}
needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="promtool not installed (CI installs it)")


@pytest.fixture(scope="module")
def served(tiny_classifier_dir, tmp_path_factory):
    """Routes and metric names of a real app."""
    directory = tiny_classifier_dir(tmp_path_factory.mktemp("manifests"))
    write_manifest(directory)
    app = create_app(directory, api_keys=["k"])
    with TestClient(app) as client:
        client.post("/v1/sentiment", json={"text": "x"}, headers={"Authorization": "Bearer k"})
        metrics = client.get("/metrics").text
    routes = {route.path for route in app.routes}
    probe_routes = {route.path for route in app.state.probe_app.routes}
    names = set(re.findall(r"^(llmbook_\w+?)(?:_bucket|_sum|_count)?[{ ]", metrics, re.M))
    return routes, names | set(re.findall(r"^(llmbook_\w+)[{ ]", metrics, re.M)), probe_routes


def container():
    [api] = K8S["deployment"]["spec"]["template"]["spec"]["containers"]
    return api


def test_manifest_kinds():
    assert {(m["apiVersion"], m["kind"]) for m in K8S.values()} == {
        ("apps/v1", "Deployment"), ("v1", "Service"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"), ("policy/v1", "PodDisruptionBudget"),
        ("networking.k8s.io/v1", "NetworkPolicy")}


def test_pods_drain_and_run_locked_down():
    from llmbook.deployment.serving import GenerateConfig, ServeConfig

    pod = K8S["deployment"]["spec"]["template"]["spec"]
    slowest = max(ServeConfig().request_timeout_s, GenerateConfig().deadline_s)
    pause = int(container()["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > slowest + pause
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert all(container()[probe]["timeoutSeconds"] >= 1
               for probe in ("startupProbe", "readinessProbe", "livenessProbe"))
    labels = K8S["deployment"]["spec"]["selector"]["matchLabels"]
    assert K8S["pdb"]["spec"]["selector"]["matchLabels"] == labels
    assert K8S["pdb"]["spec"]["minAvailable"] < K8S["deployment"]["spec"]["replicas"]
    policy = K8S["networkpolicy"]["spec"]
    assert policy["podSelector"]["matchLabels"] == labels and policy["egress"] == []
    api, probes = policy["ingress"]
    assert [p["port"] for p in api["ports"]] == ["http"] and "from" not in api
    assert [p["port"] for p in probes["ports"]] == ["probes"] and probes["from"]
    # the root file system is read-only: the verified copy of the model needs a writable /tmp
    mounts = {m["mountPath"]: m["name"] for m in container()["volumeMounts"]}
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == mounts["/tmp"])


def test_probes_and_scrapes_hit_real_endpoints_on_the_probe_port(served):
    routes, probe_routes = served[0], served[2]
    api = container()
    port_names = {p["name"]: p["containerPort"] for p in api["ports"]}
    assert port_names["probes"] == PROBE_PORT
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"),
                        ("startupProbe", "/readyz")):
        get = api[probe]["httpGet"]
        assert get["path"] == path and path in probe_routes
        assert get["port"] == "probes"
    assert "/v1/sentiment" in routes and "/metrics" in probe_routes
    assert "/v1/sentiment" not in probe_routes
    annotations = K8S["deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == PROBE_PORT


def test_selectors_and_ports_line_up():
    deployment, service, hpa = K8S["deployment"], K8S["service"], K8S["hpa"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] in {p["name"] for p in container()["ports"]}
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert 2 <= hpa["spec"]["minReplicas"] <= deployment["spec"]["replicas"] \
        <= hpa["spec"]["maxReplicas"]
    # a CPU utilisation target needs a CPU request to be computed against
    assert container()["resources"]["requests"]["cpu"]


def test_api_keys_come_from_a_secret_not_a_literal():
    env = {e["name"]: e for e in container()["env"]}
    assert "secretKeyRef" in env[KEYS_VARIABLE]["valueFrom"] and "value" not in env[KEYS_VARIABLE]
    assert container()["securityContext"]["readOnlyRootFilesystem"] is True


def test_dockerfile_serves_the_manifest_port():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    port = container()["ports"][0]["containerPort"]
    assert f"EXPOSE {port}" in dockerfile
    cmd = re.search(r"^CMD (\[.*?\])$", dockerfile.replace("\\\n", ""), re.M | re.S).group(1)
    assert '"llmbook", "serve"' in cmd and f'"{port}"' in cmd and '"0.0.0.0"' in cmd
    assert f'"--probe-port", "{PROBE_PORT}"' in cmd and f"EXPOSE {port} {PROBE_PORT}" in dockerfile
    assert f"127.0.0.1:{PROBE_PORT}/healthz" in dockerfile  # the HEALTHCHECK, on the probe port
    assert "USER 10001" in dockerfile and KEYS_VARIABLE not in dockerfile.split("FROM")[1]


def test_alert_rules_use_metrics_the_server_exports(served):
    _, exported, _ = served
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert {r["alert"] for r in alerts} == {
        "SentimentHighErrorRate", "SentimentHighLatencyP99", "SentimentSaturated",
        "GenerationSlowFirstToken", "GenerationSaturated"}
    for rule in alerts:
        used = set(re.findall(r"\bllmbook_\w+", rule["expr"]))
        used = {re.sub(r"_bucket$", "", name) for name in used}
        assert used and used <= exported, (rule["alert"], used - exported)


@needs_promtool
def test_promtool_check_rules():
    result = subprocess.run(["promtool", "check", "rules", "alerts.yml"], cwd=DEPLOY / "prometheus",
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_rule_unit_tests():
    result = subprocess.run(["promtool", "test", "rules", "alerts_test.yml"],
                            cwd=DEPLOY / "prometheus", capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
