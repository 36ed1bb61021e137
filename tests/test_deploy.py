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


def _readme():
    return (DEPLOY / "README.md").read_text()


def _code_lines(text, start):
    """The lines of shell code in ``text`` (continuations joined) that start with ``start``."""
    joined = text.replace("\\\n", " ")
    return [line.split("  #")[0].strip() for line in joined.splitlines() if line.strip().startswith(start)]


def test_deploy_kubernetes_secret_never_holds_the_ca_key(tmp_path):
    import shutil
    import shlex

    make, = _code_lines(_readme(), "deploy/make-certs.sh")
    secret, = _code_lines(_readme(), "kubectl create secret")
    out = shlex.split(make)[1]
    proc = subprocess.run(["bash", str(DEPLOY / "make-certs.sh"), *shlex.split(make)[1:]], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    uploaded = shlex.split(secret)[-1].split("=", 1)[1]
    assert Path(uploaded.rstrip("/")) == Path(out)
    assert sorted(p.name for p in (tmp_path / uploaded).iterdir()) == [
        "ca.pem", "client-key.pem", "client.pem", "cluster-key.pem", "cluster.pem"]
    ca_key = tmp_path / f"{out}-ca" / "ca-key.pem"
    assert ca_key.exists() and oct(ca_key.stat().st_mode)[-3:] == "600"
    if shutil.which("kubectl"):  # the secret exactly as kubectl would build it, without a cluster
        dry = subprocess.run([*shlex.split(secret), "--dry-run=client", "-o", "json"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
        assert dry.returncode == 0, dry.stderr
        import json

        assert "ca-key.pem" not in json.loads(dry.stdout)["data"] and "ca.pem" in json.loads(dry.stdout)["data"]
    refused = subprocess.run(["bash", str(DEPLOY / "make-certs.sh"), "same"], cwd=tmp_path, capture_output=True,
                             text=True, env={**os.environ, "CA_DIR": "same"}, timeout=60)
    assert refused.returncode == 2 and "CA_DIR must not be OUT_DIR" in refused.stderr


def test_deploy_compose_certificates_keep_the_ca_key_out_of_the_volume(tmp_path):
    certs = _compose()["services"]["certs"]
    volume, ca_dir = tmp_path / "certs-volume", tmp_path / "container-tmp"
    command = [str(volume) if a == "/certs" else a for a in certs["command"]]
    assert command[0] == "deploy/make-certs.sh" and certs["environment"]["CA_DIR"].startswith("/tmp/")
    proc = subprocess.run(["bash", str(ROOT / command[0]), *command[1:]], capture_output=True, text=True,
                          env={**os.environ, "CA_DIR": str(ca_dir)}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert not (volume / "ca-key.pem").exists() and (ca_dir / "ca-key.pem").exists()
    assert {"certs:/certs"} == set(certs["volumes"])


def test_deploy_image_owns_the_volume_mount_points_and_brings_a_thread_safe_numba_layer():
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    lines = text.splitlines()
    uid = int(re.search(r"useradd .*--uid (\d+) (\w+)", text).group(1))
    user = re.search(r"useradd .*--uid \d+ (\w+)", text).group(1)
    user_line = next(i for i, line in enumerate(lines) if line.startswith("USER "))
    assert lines[user_line] == f"USER {user}"
    mounts = {m.split(":")[1] for s in _compose()["services"].values() for m in s.get("volumes", [])}
    k8s_mounts = {m["mountPath"] for doc in _k8s().values() if doc["kind"] in ("Deployment", "Job", "Pod")
                  for c in (doc["spec"].get("template", doc)["spec"]["containers"]) for m in c["volumeMounts"]}
    assert mounts == k8s_mounts == {"/data", "/certs"}
    for mount in mounts:  # created and chowned to the image's user before it takes over
        made = [i for i, line in enumerate(lines) if line.startswith("RUN ") and "mkdir -p" in line and mount in line
                and f"chown {user}:{user}" in line]
        assert made and made[0] < user_line, mount
    for doc in _k8s().values():
        if doc["kind"] in ("Deployment", "Job", "Pod"):
            context = doc["spec"].get("template", doc)["spec"]["securityContext"]
            assert context["runAsUser"] == context["fsGroup"] == uid, doc["metadata"]["name"]
    apt = next(line for line in lines if "apt-get install" in line)
    assert "libgomp1" in apt.split()  # OpenMP: Numba's thread-safe layer for workers with several threads
    assert "start_threading_layer" in text  # and the build proves the layer loads


def test_deploy_data_reaches_the_volumes_the_workers_mount():
    compose, k8s = _compose()["services"], _k8s()
    for name in ("worker", "job"):
        assert "data:/data" in compose[name]["volumes"], name
    claim = k8s[("PersistentVolumeClaim", "recsys-dist-data")]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # the workers, the job and the data pod at once
    mounting = []
    for (kind, name), doc in k8s.items():
        spec = doc["spec"].get("template", doc)["spec"] if kind in ("Deployment", "Job", "Pod") else None
        if spec and any(v.get("persistentVolumeClaim", {}).get("claimName") == "recsys-dist-data" for v in spec["volumes"]):
            mounting.append(name)
            assert {"name": "data", "mountPath": "/data"} in spec["containers"][0]["volumeMounts"], name
    assert sorted(mounting) == ["recsys-dist-data", "recsys-dist-train", "recsys-dist-worker"]
    # the job trains on what the documented preparation writes
    train = compose["job"]["command"]
    split_out = [c for c in _code_lines(_readme(), "kubectl exec") if " split " in c]
    assert split_out and all(f"--out {Path(train[train.index('--train') + 1]).parent}" in c for c in split_out)


def test_deploy_documented_data_preparation_runs(tmp_path, ml100k_zip):
    """The README's `kubectl exec` ingest and split, run here: /data is a folder, the archive the real ml-100k."""
    import shlex
    import shutil

    data = tmp_path / "data"
    data.mkdir()
    copied, = _code_lines(_readme(), "kubectl cp")
    archive = shlex.split(copied)[-1].split(":", 1)[1]
    shutil.copy(ml100k_zip, data / Path(archive).name)
    for line in _code_lines(_readme(), "kubectl exec recsys-dist-data --"):
        command = shlex.split(line.split(" -- ", 1)[1].replace("/data/", f"{data}/"))
        assert command[:3] == ["python", "-m", "recsys_dist"]
        command += ["--format", "ml-100k"] if command[3] == "ingest" else []  # the archive is ml-100k, not ml-25m
        proc = subprocess.run([sys.executable, *command[1:]], capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr
    assert (data / "split" / "train" / "manifest.json").exists()


def test_deploy_dashboard_is_published_only_by_the_overlay_and_only_on_loopback():
    overlay = yaml.safe_load((DEPLOY / "compose.dashboard.yaml").read_text())
    assert set(overlay["services"]) == {"scheduler"}
    scheduler = _compose()["services"]["scheduler"]["command"]
    port = scheduler[scheduler.index("--dashboard-address") + 1].rsplit(":", 1)[1]
    assert overlay["services"]["scheduler"]["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert not overlay["networks"]["dashboard"].get("internal")  # a published port needs a routable network
    assert "cluster" in overlay["services"]["scheduler"]["networks"]
    service = _k8s()[("Service", "recsys-dist-scheduler")]
    assert {"name": "dashboard", "port": int(port), "targetPort": "dashboard"} in service["spec"]["ports"]
    assert f"kubectl port-forward service/recsys-dist-scheduler {port}:{port}" in _readme()
    assert "-f deploy/compose.dashboard.yaml" in _readme()


def test_deploy_documented_image_rename_reaches_every_manifest():
    """The README's sed names the pushed image in every manifest: no pod keeps the local build's name."""
    sed, = _code_lines(_readme(), "sed -i")
    old, new = re.search(r"s#(.+?)#(.+?)#", sed).groups()
    assert sed.split()[-1] == "deploy/k8s/*.yaml"
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text().replace(old, new)):
            if doc["kind"] in ("Deployment", "Job", "Pod"):
                images = {c["image"] for c in doc["spec"].get("template", doc)["spec"]["containers"]}
                assert images == {new.split(": ", 1)[1]}, path.name
    assert "docker push" in _readme() and "registry" in _readme().lower()
