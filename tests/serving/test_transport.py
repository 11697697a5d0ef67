"""TLS with a certificate made in the test, loopback-only without auth, header limits, CORS."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from frugal.config import parse_config
from frugal.errors import ConfigError
from frugal.optimize import free_port
from frugal.serving.server import check_exposure, is_loopback
from tests.conftest import ServerProcess, digits_config, write_config


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "frugal test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))  # fmt: skip
    return certfile, keyfile


def test_tls_handshake_with_the_generated_certificate(
    serve: Any, digits_model_file: Path, tmp_path: Path
) -> None:
    certfile, keyfile = make_certificate(tmp_path)
    config = parse_config(digits_config(digits_model_file, tmp_path))
    server = serve(config, ssl_certfile=str(certfile), ssl_keyfile=str(keyfile))
    assert server.url.startswith("https://")
    trusted = ssl.create_default_context(cafile=str(certfile))
    with httpx.Client(verify=trusted) as client:
        r = client.post(f"{server.url}/v1/endpoints/digits/predict",
                        json={"instances": [[0.0] * 64]})  # fmt: skip
        assert r.status_code == 200 and r.json()["predictions"]
        assert r.extensions["network_stream"].get_extra_info("ssl_object").version() in (
            "TLSv1.2", "TLSv1.3"
        )  # fmt: skip
    with pytest.raises(httpx.ConnectError):  # an untrusted certificate is refused
        httpx.get(f"{server.url}/v2/health/live", verify=True)
    with pytest.raises(httpx.HTTPError):  # plain HTTP to the TLS port gets no answer
        httpx.get(server.url.replace("https", "http") + "/v2/health/live", timeout=5)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("localhost", True),
     ("0.0.0.0", False), ("10.0.0.5", False), ("::", False), ("example.com", False)],
)  # fmt: skip
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_exposure_rules(digits_model_file: Path, tmp_path: Path) -> None:
    open_config = parse_config(digits_config(digits_model_file, tmp_path))
    check_exposure(open_config, "127.0.0.1", insecure=False)
    with pytest.raises(ConfigError, match=r"refusing to serve on 0\.0\.0\.0 without API keys") as e:
        check_exposure(open_config, "0.0.0.0", insecure=False, file="frugal.yaml")
    assert "--insecure" in (e.value.hint or "") and e.value.field == "auth"
    check_exposure(open_config, "0.0.0.0", insecure=True)  # warns, allowed
    data = digits_config(digits_model_file, tmp_path)
    data["auth"] = {"keys": str(tmp_path / "keys.db")}
    check_exposure(parse_config(data), "0.0.0.0", insecure=False)


def run_frugal(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(Path(__file__).parents[2])}
    return subprocess.run([sys.executable, "-m", "frugal", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)  # fmt: skip


def test_serving_beyond_loopback_without_auth_refuses_to_start(
    digits_model_file: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path, digits_config(digits_model_file, tmp_path))
    done = run_frugal("serve", str(config), "--host", "0.0.0.0", "--port", str(free_port()))
    assert done.returncode == 2
    assert "refusing to serve on 0.0.0.0 without API keys" in done.stderr
    assert "--insecure" in done.stderr and "Traceback" not in done.stderr


def test_insecure_starts_and_warns(digits_model_file: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, digits_config(digits_model_file, tmp_path))
    with ServerProcess(config, "--insecure", host="0.0.0.0") as server:
        assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
    assert "WITHOUT authentication (--insecure)" in server.log_text()


def test_tls_needs_both_files(digits_model_file: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, digits_config(digits_model_file, tmp_path))
    done = run_frugal("serve", str(config), "--ssl-certfile", str(tmp_path / "nope.pem"))
    assert done.returncode == 2 and "--ssl-keyfile" in done.stderr
    done = run_frugal("serve", str(config), "--ssl-certfile", str(tmp_path / "nope.pem"),
                      "--ssl-keyfile", str(tmp_path / "nope.key"))  # fmt: skip
    assert done.returncode == 2 and "nope.pem: file not found" in done.stderr


def test_headers_over_the_limit_get_431_before_any_route(
    serve: Any, digits_model_file: Path, tmp_path: Path
) -> None:
    data = digits_config(digits_model_file, tmp_path, server={"max_header_bytes": 1024})
    server = serve(parse_config(data))
    big = {"x-padding": "a" * 2000}
    for method, path in (("POST", "/v1/endpoints/digits/predict"), ("GET", "/v2/models/digits"),
                         ("GET", "/metrics")):  # fmt: skip
        r = httpx.request(method, server.url + path, headers=big, json={"instances": [[0] * 64]})
        assert r.status_code == 431 and r.json()["field"] == "headers", path
    ok = httpx.post(f"{server.url}/v1/endpoints/digits/predict", json={"instances": [[0] * 64]})
    assert ok.status_code == 200


def test_cors_is_off_by_default_and_configurable(
    serve: Any, digits_model_file: Path, tmp_path: Path
) -> None:
    origin = {"origin": "https://app.example", "access-control-request-method": "POST"}
    plain = serve(parse_config(digits_config(digits_model_file, tmp_path)))
    r = httpx.options(f"{plain.url}/v1/endpoints/digits/predict", headers=origin)
    assert "access-control-allow-origin" not in r.headers
    data = digits_config(digits_model_file, tmp_path,
                         server={"cors": {"allow_origins": ["https://app.example"]}})  # fmt: skip
    cors = serve(parse_config(data))
    preflight = httpx.options(f"{cors.url}/v1/endpoints/digits/predict", headers=origin)
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    r = httpx.post(f"{cors.url}/v1/endpoints/digits/predict", json={"instances": [[0] * 64]},
                   headers={"origin": "https://app.example"})  # fmt: skip
    assert r.headers["access-control-allow-origin"] == "https://app.example"
    assert "x-frugal-cost-usd" in r.headers["access-control-expose-headers"]
    other = httpx.options(f"{cors.url}/v1/endpoints/digits/predict",
                          headers=origin | {"origin": "https://evil.example"})  # fmt: skip
    assert "access-control-allow-origin" not in other.headers
