"""The whole chain against object storage: a loopback S3 server (moto's server mode, as s3fs's own
suite uses) with s3fs, the endpoint passed as users pass it (FSSPEC_S3_ENDPOINT_URL)."""

import json
import os

import pytest

from tests.conftest import run_cli

moto_server = pytest.importorskip("moto.server", reason="the S3 tests need the test extra (moto[server], s3fs)")
s3fs = pytest.importorskip("s3fs")


@pytest.fixture(scope="module")
def s3_env():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    env = {"FSSPEC_S3_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": env["FSSPEC_S3_ENDPOINT_URL"]})
        fs.mkdir("bkt")
        yield fs
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


@pytest.mark.realdata
def test_s3_loopback_whole_chain_ingest_split_train_evaluate_score(s3_env, ml100k_zip, tmp_path):
    base = "s3://bkt/run"
    steps = [("ingest", "--source", str(ml100k_zip), "--out", f"{base}/ds"),
             ("split", "--data", f"{base}/ds", "--method", "folds", "--fold", "u1", "--out", f"{base}/u1"),
             ("train", "--train", f"{base}/u1/train", "--test", f"{base}/u1/test", "--out", f"{base}/model",
              "--rank", "4", "--iterations", "2", "--engine", "shm"),
             ("evaluate", "--model", f"{base}/model", "--data", f"{base}/u1/test", f"{base}/u1/cold",
              "--out", f"{base}/ev"),
             ("score", "--model", f"{base}/model", "--out", f"{base}/scores", "--k", "5")]
    for step in steps:
        proc = run_cli(*step, cwd=tmp_path)
        assert proc.returncode == 0, (step, proc.stderr)
    fs = s3_env
    fs.invalidate_cache()
    assert json.loads(fs.cat("bkt/run/u1/split.json"))["counts"] == {"train": 80_000, "test": 19_968, "cold": 32,
                                                                      "cold_users": 0, "cold_items": 32}
    assert "cold" in json.loads(fs.cat("bkt/run/model/metrics.json"))
    assert json.loads(fs.cat("bkt/run/ev/metrics.json"))["n"] == 20_000
    assert fs.exists("bkt/run/scores/_SUCCESS") and not list(tmp_path.iterdir())
