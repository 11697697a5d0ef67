"""The dashboard's load time and size, and the screenshot in docs/img/dashboard.png.

Serves two digits endpoints with ``frugal serve`` (a cached cascade, small -> large, and the
large model alone), sends them concurrent traffic with repeats (cache hits), escalations and a
few bad requests, then opens ``/dashboard`` in Debian's headless chromium (Selenium and
chromedriver, as the browser test does) and reports the navigation timing of ``--loads`` fresh
loads and the bytes the page ships (HTML + JS + CSS).

    python bench/dashboard_load.py --out docs/img/dashboard.png

Needs the dev extra (selenium) and Debian's chromium + chromium-driver (scripts/install).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import joblib
import yaml
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import Select, WebDriverWait
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from frugal.observability import shipped_bytes
from frugal.optimize.server_process import running_server
from frugal.runtimes import sha256_of

INPUTS = [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}]


def write_project(folder: Path) -> Path:
    x, y = load_digits(return_X_y=True)
    small = folder / "small.joblib"
    large = folder / "large.joblib"
    joblib.dump(LogisticRegression(C=0.01, max_iter=3000).fit(x[:300], y[:300]), small)
    joblib.dump(LogisticRegression(max_iter=3000).fit(x[:1200], y[:1200]), large)
    batching = {"max_batch_size": 32, "max_wait_ms": 5}
    config = {
        "instance": {"type": "c7i.large"},
        "models": [
            {"name": "digits-small", "version": "1", "runtime": "sklearn", "path": str(small),
             "sha256": sha256_of(small), "inputs": INPUTS, "batching": batching},
            {"name": "digits-large", "version": "1", "runtime": "sklearn", "path": str(large),
             "sha256": sha256_of(large), "inputs": INPUTS, "batching": batching},
        ],
        "endpoints": [
            {"name": "digits", "route": {"cascade": [
                {"model": "digits-small", "accept": {"confidence": ">= 0.6"}},
                {"model": "digits-large"}]},
             "cache": {"store": "memory", "ttl_s": 600}},
            {"name": "digits-large", "model": "digits-large"},
        ],
        "ledger": {"path": str(folder / "ledger.db")},
    }  # fmt: skip
    path = folder / "frugal.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def send(url: str, requests: int) -> None:
    x, _ = load_digits(return_X_y=True)

    def one(i: int) -> None:
        endpoint = "digits" if i % 4 else "digits-large"
        items = [x[(i * 7) % 600].tolist()] if i % 97 else [[1.0]]  # a few bad shapes (400)
        client.post(f"/v1/endpoints/{endpoint}/predict", json={"instances": items})

    with httpx.Client(base_url=url, timeout=30, limits=httpx.Limits(max_connections=8)) as client:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, range(requests)))


def browser(width: int, height: int) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={width},{height}"):  # fmt: skip
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def painted(driver: webdriver.Chrome) -> bool:
    stat = driver.find_element("css selector", '[data-stat="requests"]')
    return stat.get_attribute("data-value") is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--gap-s", type=float, default=60.0, help="seconds between bursts")
    parser.add_argument("--loads", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("build/dashboard.png"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = write_project(Path(tmp))
        with running_server(config) as (url, _):
            for burst in range(3):  # three bursts apart, so the chart has a shape
                if burst:
                    time.sleep(args.gap_s)
                send(url, args.requests // 3)
            driver = browser(1280, 900)
            try:
                loads = []
                for _ in range(args.loads):
                    driver.get(f"{url}/dashboard")
                    WebDriverWait(driver, 30).until(painted)
                    loads.append(driver.execute_script(
                        "const n = performance.getEntriesByType('navigation')[0];"
                        "return [n.domContentLoadedEventEnd - n.startTime,"
                        " n.loadEventEnd - n.startTime]"))  # fmt: skip
                Select(driver.find_element("id", "window")).select_by_value("15m")
                WebDriverWait(driver, 30).until(lambda d: d.find_element(
                    "tag name", "body").get_attribute("data-window") == "15m")  # fmt: skip
                height = driver.execute_script("return document.documentElement.scrollHeight")
                driver.set_window_size(1280, int(height) + 120)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(args.out))
            finally:
                driver.quit()
    (cold_dom, cold_load), warm = loads[0], loads[1:]
    dom = statistics.median(d for d, _ in warm)
    load = statistics.median(x for _, x in warm)
    print(f"first load (nothing cached): DOMContentLoaded {cold_dom:.0f} ms, load event "
          f"{cold_load:.0f} ms; next {len(warm)} loads (median; files cached for an hour): "
          f"{dom:.0f} ms, {load:.0f} ms; ships {shipped_bytes():,} bytes (HTML + JS + CSS); "
          f"screenshot: {args.out}")  # fmt: skip


if __name__ == "__main__":
    main()
