"""Structural checks of what cannot run here (no Docker engine, no cluster): infra/docker-compose.yml,
the Kubernetes work-pool job template, and prefect.yaml's deployments. They check what the real
tools would read: the compose services and their wiring, the template through Prefect's own
server-side validator and templating, the deployments' entrypoints through the loader the worker
uses, and that no credential is committed in any of them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE = REPO_ROOT / "infra" / "docker-compose.yml"
K8S_TEMPLATE = REPO_ROOT / "infra" / "k8s" / "base-job-template.json"
PREFECT_YAML = REPO_ROOT / "prefect.yaml"

SECRET_NAME = re.compile(r"(KEY|SECRET|PASSWORD|TOKEN|USER)", re.IGNORECASE)
ENV_REFERENCE = re.compile(r"^\$\{[A-Z_][A-Z0-9_]*(:?[-?][^}]*)?\}$")
# An AWS access key id, or a long random-looking literal after a secret-ish name.
LEAKED = [re.compile(r"AKIA[0-9A-Z]{16}"),
          re.compile(r"(secret|password|token)[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9/+]{20,}", re.IGNORECASE)]


def _env_dict(environment) -> dict[str, str]:
    if isinstance(environment, list):  # compose also takes ["KEY=value", ...]
        return dict(item.split("=", 1) for item in environment)
    return {k: str(v) for k, v in (environment or {}).items()}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def k8s_template() -> dict:
    return json.loads(K8S_TEMPLATE.read_text())


@pytest.fixture(scope="module")
def prefect_project() -> dict:
    return yaml.safe_load(PREFECT_YAML.read_text())


# ---- docker-compose

def test_compose_has_minio_bucket_prefect_and_a_gpu_worker(compose):
    services = compose["services"]
    assert {"minio", "create-bucket", "prefect-server", "gpu-worker"} <= set(services)
    for name, service in services.items():
        assert "image" in service or "build" in service, f"{name}: neither image nor build"

    minio = services["minio"]
    assert minio["image"].startswith("minio/minio") and "server" in minio["command"]
    assert {"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"} <= set(_env_dict(minio["environment"]))
    assert any(str(p).startswith("9000:") for p in minio["ports"])

    bucket = services["create-bucket"]
    assert bucket["depends_on"]["minio"]["condition"] == "service_healthy"
    assert "mc mb" in bucket["entrypoint"] and "local/editlens" in bucket["entrypoint"]

    server = services["prefect-server"]
    assert server["image"].startswith("prefecthq/prefect:3.")
    assert "prefect server start" in server["command"] and any(str(p).startswith("4200:") for p in server["ports"])


def test_compose_gpu_worker_reserves_nvidia_gpus_and_reads_s3_from_the_environment(compose):
    worker = compose["services"]["gpu-worker"]
    assert worker["build"]["dockerfile"] == "infra/Dockerfile"
    assert (REPO_ROOT / "infra" / "Dockerfile").exists()
    assert "prefect worker start --pool gpu --type process" in worker["command"]
    assert "prefect concurrency-limit create gpu 1" in worker["command"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices), devices
    env = _env_dict(worker["environment"])
    assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert env["EDITLENS_S3_ENDPOINT"] == env["AWS_ENDPOINT_URL_S3"] == "http://minio:9000"
    assert env["EDITLENS_HOME"] == "/editlens"  # prefect.yaml's pull step
    assert env["HF_HUB_OFFLINE"] == "1" and env["KEDRO_DISABLE_TELEMETRY"] == "true"
    # the S3 keys the catalog reads (conf/s3/credentials.yml) are MinIO's, from the environment
    s3_credentials = (REPO_ROOT / "conf" / "s3" / "credentials.yml").read_text()
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "EDITLENS_S3_ENDPOINT"):
        assert f"${{oc.env:{var}}}" in s3_credentials and var in env
    assert env["AWS_ACCESS_KEY_ID"] == "${MINIO_ROOT_USER}" and env["AWS_SECRET_ACCESS_KEY"] == "${MINIO_ROOT_PASSWORD}"
    depends = worker["depends_on"]
    assert depends["prefect-server"]["condition"] == "service_healthy"
    assert depends["create-bucket"]["condition"] == "service_completed_successfully"


def test_compose_commits_no_credentials(compose):
    for name, service in compose["services"].items():
        for key, value in _env_dict(service.get("environment")).items():
            if SECRET_NAME.search(key):
                assert ENV_REFERENCE.match(value), f"{COMPOSE.name}: {name}.{key} must come from the environment, not {value!r}"


# ---- Kubernetes work-pool job template

def test_k8s_template_is_a_valid_base_job_template(k8s_template):
    from prefect.server.schemas.actions import validate_base_job_template

    # the check `prefect work-pool create --base-job-template` gets from the server
    assert validate_base_job_template(k8s_template) is k8s_template
    assert {"job_configuration", "variables"} == set(k8s_template)
    variables = k8s_template["variables"]
    assert variables["type"] == "object"
    import jsonschema

    jsonschema.Draft7Validator.check_schema(variables)
    defaults = {k: v["default"] for k, v in variables["properties"].items() if "default" in v}
    jsonschema.validate(defaults, variables)


def test_k8s_template_renders_a_gpu_job_with_s3_from_a_secret(k8s_template):
    from prefect.utilities.templating import apply_values

    variables = k8s_template["variables"]["properties"]
    values = {k: v["default"] for k, v in variables.items() if "default" in v}
    values.update(name="nightly-generate", command="prefect flow-run execute", env={"EXTRA": "1"}, labels={})
    config = apply_values(k8s_template["job_configuration"], values)
    manifest = config["job_manifest"]
    assert manifest["kind"] == "Job" and manifest["apiVersion"] == "batch/v1"
    pod = manifest["spec"]["template"]["spec"]
    # what the Kubernetes worker requires of a manifest (prefect-kubernetes' base manifest)
    assert (pod["parallelism"], pod["completions"], pod["restartPolicy"]) == (1, 1, "Never")
    (container,) = pod["containers"]
    assert container["name"] == "prefect-job" and container["image"] == "editlens-worker:latest"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    env = {e["name"]: e for e in container["env"]}
    for name in ("EDITLENS_HOME", "EDITLENS_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "editlens-s3", "key": name} and "value" not in env[name]
    assert env["AWS_ENDPOINT_URL_S3"]["valueFrom"]["secretKeyRef"]["key"] == "EDITLENS_S3_ENDPOINT"
    assert env["HF_HUB_OFFLINE"]["value"] == "1"
    assert "{{" not in json.dumps(config), "a placeholder was left unrendered"
    assert config["env"] == {"EXTRA": "1"}  # the worker prepends these to the container's env


def test_k8s_template_commits_no_credentials():
    text = K8S_TEMPLATE.read_text()
    for pattern in LEAKED:
        assert not pattern.search(text), f"{K8S_TEMPLATE}: looks like a committed credential"


# ---- prefect.yaml

def test_prefect_yaml_deployments_on_the_gpu_pool(prefect_project):
    deployments = prefect_project["deployments"]
    entrypoints = {d["entrypoint"].split(":")[1] for d in deployments}
    assert entrypoints == {"generate_flow", "train_flow", "evaluate_flow", "full_flow"}
    for deployment in deployments:
        assert deployment["work_pool"]["name"] == "gpu", deployment["name"]
        assert deployment["entrypoint"].startswith("flows/kedro_flow.py:")
    recipes = {d["name"]: d["parameters"]["env"] for d in deployments if "recipe" in d.get("tags", [])}
    assert recipes == {"diffseg30k": "diffseg30k+s3", "opensdi": "opensdi+s3", "brgen": "brgen+s3"}
    (nightly,) = [d for d in deployments if d["name"] == "nightly"]
    assert nightly["entrypoint"].endswith(":generate_flow")
    (schedule,) = nightly["schedules"]
    from prefect.client.schemas.schedules import CronSchedule

    assert CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"]).cron == "0 2 * * *"
    assert prefect_project["pull"][0]["prefect.deployments.steps.set_working_directory"]["directory"] == "{{ $EDITLENS_HOME }}"


@pytest.mark.parametrize("index", range(7))
def test_prefect_yaml_entrypoints_load_and_take_their_parameters(prefect_project, index):
    from prefect.flows import load_flow_from_entrypoint

    deployment = prefect_project["deployments"][index]
    flow = load_flow_from_entrypoint(str(REPO_ROOT / deployment["entrypoint"]))  # as the worker loads it
    parameters = deployment["parameters"]
    assert set(parameters) == set(flow.parameters.properties), deployment["entrypoint"]
    validated = flow.validate_parameters(parameters)  # pydantic: Orchestration etc.
    assert validated["env"].split("+")[-1] == "s3" and validated["orchestration"].retries >= 1
    for layer in validated["env"].split("+"):  # every layer of a recipe deployment exists
        assert (REPO_ROOT / "conf" / layer).is_dir(), f"{deployment['name']}: no conf/{layer}"
    assert validated["orchestration"].timeouts_s["default"] > 0


def test_no_committed_credentials_in_deployment_files():
    for path in [PREFECT_YAML, COMPOSE, REPO_ROOT / "infra" / "Dockerfile", *sorted((REPO_ROOT / "conf" / "s3").glob("*.yml"))]:
        text = path.read_text()
        for pattern in LEAKED:
            assert not pattern.search(text), f"{path}: looks like a committed credential"
