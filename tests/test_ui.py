"""``inferbench ui``: the page's queries return and its charts render in headless Chromium; the
server answers only this machine's page that carries its token."""

from __future__ import annotations

import json
import threading
import urllib.request

import pytest
import yaml
from helpers import chromium

from dse.cli._ui import Explorer, make_server
from dse.sweep import run_sweep
from tests.test_plots import SPEC

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    d = tmp_path_factory.mktemp("ui")
    (d / "p.yaml").write_text(yaml.safe_dump(SPEC))
    run_sweep(d / "p.yaml", d / "p.zarr", quiet=True)
    server, url = make_server(Explorer([d / "p.zarr"]), 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield url, d / "p.zarr"
    server.shutdown()
    server.server_close()


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"X-InferBench-Token": token} if token else {})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_the_api_needs_the_token_and_answers_in_the_commands_words(served):
    url, store = served
    base, token = url.split("/?token=")
    assert _get(base + "/")[0] == 403 and _get(base + "/api/catalog")[0] == 403
    code, body = _get(f"{base}/api/points?path={store}&x=throughput_tokens_per_s_per_chip&y=usd_per_mtok", token)
    pts = json.loads(body)["ok"]
    assert code == 200 and any(pts["front"]) and len(pts["x"]) == len(pts["index"]) == pts["n_meeting"]
    code, body = _get(f"{base}/api/points?path=/etc&x=a&y=b", token)
    assert "expected one of" in json.loads(body)["error"]


def test_plan_and_explore_in_the_browser(served):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    url, _ = served
    with chromium() as browser:
        wait = WebDriverWait(browser, 240)
        browser.get(url)
        wait.until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "yes")
        # Plan: a small question, its table and its curve.
        form = browser.find_element(By.ID, "plan-form")
        Select(form.find_element(By.NAME, "model")).select_by_visible_text("llama-3-8b")
        Select(form.find_element(By.NAME, "hardware")).select_by_visible_text("a100-sxm4-80gb")
        for name, value in (("max_chips", "2"), ("ttft_ms", "500"), ("tpot_ms", "30")):
            box = form.find_element(By.NAME, name)
            box.clear()
            box.send_keys(value)
        form.find_element(By.CSS_SELECTOR, "button.go").click()
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#plan-out svg circle"))
        out = browser.find_element(By.ID, "plan-out").text
        assert "Best" in out and "a100-sxm4-80gb" in out, out
        assert len(browser.find_elements(By.CSS_SELECTOR, "#plan-out svg polyline")) == 1
        # A refused query says why in one line.
        form.find_element(By.NAME, "max_chips").clear()
        form.find_element(By.NAME, "max_chips").send_keys("x")
        form.find_element(By.CSS_SELECTOR, "button.go").click()
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#plan-out .error"))
        assert "--max-chips" in browser.find_element(By.CSS_SELECTOR, "#plan-out .error").text
        # Explore: the store's front, then a hovered design at the three levels.
        browser.find_element(By.CSS_SELECTOR, "nav button[data-tab=explore]").click()
        browser.find_element(By.CSS_SELECTOR, "#explore-form button.go").click()
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#explore-out circle.front"))
        assert len(browser.find_elements(By.CSS_SELECTOR, "#explore-out circle")) > 10
        point = browser.find_element(By.CSS_SELECTOR, "#explore-out circle.front")
        browser.execute_script("arguments[0].dispatchEvent(new MouseEvent('mouseover', {bubbles: true}))", point)
        wait.until(lambda b: "calibrated" in b.find_element(By.ID, "tip").text)
        tip = browser.find_element(By.ID, "tip").text
        assert "ideal" in tip and "achievable" in tip and "a100-sxm4-80gb" in tip, tip
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
