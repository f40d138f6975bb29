"""Small builders shared by the tests."""

from __future__ import annotations

import contextlib

import numpy as np

import dse
from dse.engine import make_config
from models import achievable_software


def f(x: float):
    """A scalar leaf as the spec loaders make them (float64, not weakly typed)."""
    return np.asarray(float(x), dtype=np.float64)


def config(model: str = "llama-3-70b", hardware: str = "a100-sxm4-80gb", **kw):
    return make_config(dse.load_model(model), dse.load_hardware(hardware), **kw)


def seed_software():
    return achievable_software()


def serve_eager(model: str, hardware: str, level: str = "calibrated", platform=None, dtype: str = "bf16", **knobs):
    """Metrics of one configuration by calling ``models.serve`` eagerly (no compilation: a
    fraction of a second per call, where a new static structure through the engine compiles
    for several seconds). ``knobs`` are make_config arguments or SI leaves; ``batching`` too."""
    from dse.engine import calibrated_software, float64, with_knobs
    from dse.specs import load_platform
    from models import ideal_software, serve

    h = dse.load_hardware(hardware)
    structure = {
        k: knobs.pop(k)
        for k in ("tp", "pp", "ep", "sp", "dp", "batch", "prompt_tokens", "output_tokens", "batching")
        if k in knobs
    }
    plat = load_platform(platform) if isinstance(platform, str) else platform
    c = make_config(
        dse.load_model(model), h, weight_dtype=dtype, act_dtype=dtype, kv_dtype=dtype, platform=plat, **structure
    )
    c = with_knobs(c, {k: np.asarray(float(v)) for k, v in knobs.items()})
    sw = {"ideal": ideal_software, "achievable": achievable_software, "calibrated": lambda: calibrated_software(h)}[
        level
    ]()
    with float64():
        m = serve(c.model, c.chip, c.platform, c.scenario, c.economics, sw)
        return type(m)(*(float(x) for x in m))


# Boxes of the texts of the page's inline SVG figures (matplotlib draws each text as a group
# text_N), of the page's width and of every element wider than it.
_LAYOUT_JS = """
const figs = Array.from(document.querySelectorAll('figure svg'));
const boxes = figs.map(s => Array.from(s.querySelectorAll('g[id^="text_"]')).map(g => {
  const r = g.getBoundingClientRect(); return [g.id, r.left, r.top, r.right, r.bottom]; }));
const width = document.documentElement.clientWidth;
const wide = Array.from(document.querySelectorAll('body *')).filter(e => {
  const r = e.getBoundingClientRect(); return r.right > width + 1 && !e.closest('.scroll'); }).map(e => e.tagName);
return {areas: figs.map(s => { const r = s.getBoundingClientRect(); return r.width * r.height; }),
        texts: boxes, overflow: wide, scroll: document.documentElement.scrollWidth, width: width};
"""


@contextlib.contextmanager
def chromium():
    """Headless Debian Chromium through Selenium (skipped, saying how to install it, without it)."""
    import shutil

    import pytest

    driver_path = shutil.which("chromedriver")
    if not (shutil.which("chromium") and driver_path):
        pytest.skip("no Chromium: apt-get install chromium chromium-driver (the rest is checked without it)")
    webdriver = pytest.importorskip("selenium.webdriver")
    opts = webdriver.ChromeOptions()
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
    ):
        opts.add_argument(flag)
    opts.binary_location = shutil.which("chromium")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=driver_path))
    try:
        yield browser
    finally:
        browser.quit()


def check_in_browser(page, figures: int) -> None:
    """Open ``page`` in headless Chromium: no console error, ``figures`` figures drawn, no
    element beyond the page's width (tables scroll in their own box), no two texts of a
    figure overlapping."""
    with chromium() as browser:
        browser.get(page.as_uri())
        got = browser.execute_script(_LAYOUT_JS)
        assert len(got["areas"]) == figures and all(a > 10_000 for a in got["areas"]), got["areas"]
        assert not got["overflow"] and got["scroll"] <= got["width"] + 1, (got["overflow"], got["scroll"])
        for texts in got["texts"]:
            clashes = [
                (a[0], b[0])
                for i, a in enumerate(texts)
                for b in texts[i + 1 :]
                if min(a[3], b[3]) - max(a[1], b[1]) > 1 and min(a[4], b[4]) - max(a[2], b[2]) > 1
            ]
            assert not clashes, clashes
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
