"""deploy/: the files parse, name things that exist, agree with each other, and their commands work:
the TLS test below runs the compose file's own scheduler, worker and job commands on 127.0.0.1."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.cluster import cluster_processes, free_port
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"


def _compose():
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def _k8s():
    docs = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            docs[(doc["kind"], doc["metadata"]["name"])] = doc
    return docs


def _container(doc):
    spec = doc["spec"]["template"]["spec"]
    return spec["containers"][0]


def test_deploy_compose_is_a_private_tls_cluster_with_a_job():
    compose = _compose()
    services = compose["services"]
    assert {"certs", "scheduler", "worker", "job"} <= set(services)
    assert compose["networks"]["cluster"]["internal"] is True
    assert all("ports" not in s for s in services.values())  # nothing published on the host
    scheduler, worker, job = (services[n]["command"] for n in ("scheduler", "worker", "job"))
    assert scheduler[:2] == ["dask", "scheduler"] and scheduler[scheduler.index("--protocol") + 1] == "tls"
    assert worker[:3] == ["dask", "worker", "tls://scheduler:8786"]
    for command in (scheduler, worker):
        assert {"--tls-ca-file", "--tls-cert", "--tls-key"} <= set(command)
    assert services["job"]["environment"]["DASK_SCHEDULER_ADDRESS"] == "tls://scheduler:8786"
    assert services["certs"]["command"][0] == "deploy/make-certs.sh"


def test_deploy_job_commands_are_valid_jobs_of_this_version():
    from recsys_dist.cli import build_parser, load_config

    commands = [_compose()["services"]["job"]["command"], _container(_k8s()[("Job", "recsys-dist-train")])["command"]]
    for command in commands:
        assert command[0] == "python" and (ROOT / command[1]).exists()
        job = Path(command[1]).stem.replace("_", "-")
        args = build_parser().parse_args([job, *command[2:]])
        cfg = load_config(args, job)  # validates every key and value, as the job would at start
        assert cfg.engine.name == "dask" and cfg.engine.tls_cert.startswith("/certs/")
        assert (ROOT / args.config).exists()


def test_deploy_kubernetes_runs_the_same_commands_as_compose():
    compose, k8s = _compose()["services"], _k8s()
    scheduler = _container(k8s[("Deployment", "recsys-dist-scheduler")])["command"]
    worker = _container(k8s[("Deployment", "recsys-dist-worker")])["command"]
    job = _container(k8s[("Job", "recsys-dist-train")])
    assert scheduler == compose["scheduler"]["command"]
    same_address = [a.replace("recsys-dist-scheduler", "scheduler") for a in worker]
    assert same_address == compose["worker"]["command"]
    assert job["command"] == compose["job"]["command"]
    assert {e["name"]: e["value"] for e in job["env"]}["DASK_SCHEDULER_ADDRESS"] == "tls://recsys-dist-scheduler:8786"
    assert k8s[("Service", "recsys-dist-scheduler")]["spec"]["type"] == "ClusterIP"
    assert ("NetworkPolicy", "recsys-dist-scheduler") in k8s


def test_deploy_dockerfile_copies_what_exists_and_installs_the_entry_points():
    text = (DEPLOY / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (.+) \S+$", text, flags=re.M):
        for path in source.split():
            assert (ROOT / path).exists(), path
    assert "pip install" in text and 'ENTRYPOINT ["tini", "--"]' in text
    for command in (c["command"][0] for c in _compose()["services"].values()):
        assert command in ("dask", "python") or (ROOT / command).exists(), command


def _make_certs(out):
    proc = subprocess.run(["bash", str(DEPLOY / "make-certs.sh"), str(out)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert oct((out / "client-key.pem").stat().st_mode)[-3:] == "600"
    return out


def _local(command, certs, port):
    """A compose command on this machine: the certificates' folder, the scheduler on 127.0.0.1:port."""
    out = [a.replace("/certs/", f"{certs}/").replace("tls://scheduler:8786", f"tls://127.0.0.1:{port}")
           for a in command]
    return [str(Path(sys.executable).with_name(out[0])) if out[0] == "dask" else out[0], *out[1:]]


@pytest.mark.dask
def test_deploy_tls_cluster_accepts_the_job_and_refuses_clients_without_the_certificate(small_split, tmp_path):
    from distributed import Security

    certs, stranger = _make_certs(tmp_path / "certs"), _make_certs(tmp_path / "other-ca")
    services = _compose()["services"]
    port = free_port()
    scheduler = _local(services["scheduler"]["command"], certs, port)
    scheduler[scheduler.index("--port") + 1] = str(port)
    scheduler[scheduler.index("--dashboard-address") + 1] = "127.0.0.1:0"
    worker = _local(services["worker"]["command"], certs, port) + ["--host", "127.0.0.1", "--no-dashboard"]
    security = Security(tls_ca_file=str(certs / "ca.pem"), tls_client_cert=str(certs / "client.pem"),
                        tls_client_key=str(certs / "client-key.pem"), require_encryption=True)
    job = _local(services["job"]["command"], certs, port)
    job = [sys.executable if job[0] == "python" else job[0], *job[1:]]
    job = [str(small_split / a[len("/data/split/"):]) if a.startswith("/data/split/") else a for a in job]
    job = [str(tmp_path / "model") if a == "/data/model" else a for a in job]
    quick = ["--iterations", "2", "--set", "model.rank=4", "--set", "engine.connect_timeout=5"]
    env = {**os.environ, "DASK_SCHEDULER_ADDRESS": f"tls://127.0.0.1:{port}"}

    def run(command):
        return subprocess.run([*command, *quick], capture_output=True, text=True, timeout=180, env=env, cwd=ROOT)

    with cluster_processes(scheduler, port=port, scheme="tls", security=security) as cluster:
        for _ in range(2):
            cluster.start(worker)
        cluster.wait_for_workers(2)
        accepted = run(job)
        assert accepted.returncode == 0, accepted.stderr
        assert (tmp_path / "model" / "model.json").exists()
        no_certificate = [a for a in job if not a.startswith("engine.tls_") and a != "--set"] + ["--set", "model.seed=0"]
        refused = run(no_certificate)
        assert refused.returncode == 2 and "cannot reach the Dask scheduler at tls://" in refused.stderr, refused.stderr
        other_ca = [a.replace(str(certs), str(stranger)) for a in job]
        refused = run(other_ca)
        assert refused.returncode == 2 and "cannot reach the Dask scheduler at tls://" in refused.stderr, refused.stderr
