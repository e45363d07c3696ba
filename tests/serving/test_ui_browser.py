"""The draw-a-digit page (/ui/) in a real headless Chromium against a real ``bentoml serve``.

Chromium is Debian's (``scripts/install_system_packages.sh``), driven by Playwright by path,
so there is no ``playwright install`` download. Without Chromium these tests FAIL
with a hint; set ``MNIST_SKIP_BROWSER=1`` to skip them on purpose.

The server runs a real trained model (the session fixture ``trained_model``: the repo's
``models/model.onnx`` after ``dvc repro``, else the real pipeline run once on real MNIST,
as in CI). The digit and the ten bars the page shows must be what ``/predict`` answers
for the very PNG on the canvas; every digit 0-9 drawn with mouse strokes must be
recognised (at least 9 of 10 at each of three pen widths); and the 28x28 image the
model was given is shown beside the bars; "Wrong? It was a ..." sends a correction and
the page confirms it. Screenshots of the page go to the tests' tmp dirs and to
``artifacts/ui-screenshot.png`` and ``artifacts/ui-feedback.png``.

    pytest -m browser tests/serving/test_ui_browser.py
"""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from mnist_mlops.monitoring.corrections_store import CorrectionsStore
from mnist_mlops.monitoring.log_reader import read_log
from support import ROOT as REPO
from support.bento_process import serving

pytestmark = pytest.mark.slow

SCREENSHOT = REPO / "artifacts" / "ui-screenshot.png"
# A hang guard for each page wait (an answer shown, an element ready): they end as soon
# as the page gets there, so only a page that never does waits this long.
ANSWER_TIMEOUT_MS = 300_000
# Root in a container: no sandbox; the rest keeps Chromium off the network and quiet.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Strokes as (x, y) fractions of the canvas; each inner list is one pen-down..pen-up,
# drawn the way people write the digit (not tuned to a model).
STROKES: dict[int, list[list[tuple[float, float]]]] = {
    0: [[(0.5, 0.15), (0.3, 0.3), (0.27, 0.5), (0.3, 0.7), (0.5, 0.85), (0.7, 0.7),
         (0.73, 0.5), (0.7, 0.3), (0.5, 0.15)]],
    1: [[(0.5, 0.15), (0.5, 0.85)]],
    2: [[(0.3, 0.3), (0.4, 0.18), (0.6, 0.17), (0.7, 0.3), (0.65, 0.45), (0.3, 0.82),
         (0.72, 0.82)]],
    3: [[(0.3, 0.2), (0.6, 0.17), (0.68, 0.3), (0.5, 0.47), (0.7, 0.62), (0.65, 0.8),
         (0.3, 0.83)]],
    4: [[(0.55, 0.15), (0.28, 0.6), (0.72, 0.6)], [(0.6, 0.35), (0.6, 0.85)]],
    5: [[(0.68, 0.17), (0.35, 0.17), (0.32, 0.45), (0.55, 0.42), (0.68, 0.58), (0.62, 0.78),
         (0.32, 0.82)]],
    6: [[(0.62, 0.15), (0.38, 0.4), (0.32, 0.65), (0.45, 0.83), (0.62, 0.78), (0.66, 0.62),
         (0.5, 0.52), (0.35, 0.6)]],
    7: [[(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]],
    8: [[(0.6, 0.2), (0.45, 0.15), (0.35, 0.27), (0.5, 0.45), (0.65, 0.62), (0.55, 0.83),
         (0.38, 0.8), (0.35, 0.63), (0.5, 0.45), (0.63, 0.3), (0.6, 0.2)]],
    9: [[(0.65, 0.3), (0.5, 0.18), (0.35, 0.3), (0.4, 0.45), (0.6, 0.45), (0.65, 0.3),
         (0.62, 0.6), (0.55, 0.85)]],
}  # fmt: skip
PEN_WIDTHS = (8, 20, 34)  # canvas pixels on the 280x280 canvas: fine pen .. marker


@dataclass(frozen=True)
class Served:
    """A running server: its base URL and an httpx client."""

    url: str
    client: httpx.Client


@pytest.fixture(scope="module")
def served(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``bentoml serve`` of the real trained model on a free loopback port."""
    home = tmp_path_factory.mktemp("bentoml_home")
    with (
        serving(trained_model, home) as process,
        httpx.Client(base_url=process.url, timeout=10) as client,
    ):
        yield Served(url=process.url, client=client)


def chromium_path() -> str:
    """Debian's Chromium (or $MNIST_CHROMIUM); fails with the fix when it is missing."""
    if os.environ.get("MNIST_SKIP_BROWSER") == "1":
        pytest.skip("MNIST_SKIP_BROWSER=1: browser tests skipped on purpose")
    path = os.environ.get("MNIST_CHROMIUM") or shutil.which("chromium")
    if not path or not Path(path).exists():
        pytest.fail(
            "Chromium not found (looked for $MNIST_CHROMIUM, then `chromium` on PATH). "
            "Install it with `scripts/install_system_packages.sh` (CI does), "
            "or set MNIST_SKIP_BROWSER=1 to skip the browser tests.",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium for the module, with a fresh profile and touch support."""
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "Playwright for Python is missing: pip install -e '.[dev]' "
            "(no `playwright install` needed; the tests use Debian's Chromium)",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium_profile")),  # a fresh --user-data-dir
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 900, "height": 640},
            has_touch=True,
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser_context: Any, served: Served) -> Iterator[Any]:
    """A fresh tab on the page, opened at /ui (no slash: the redirect must work too).

    Fails the test if the page's script threw anything uncaught.
    """
    tab = browser_context.new_page()
    tab.set_default_timeout(ANSWER_TIMEOUT_MS)
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(f"{served.url}/ui")
    assert tab.url == f"{served.url}/ui/"
    try:
        yield tab
    finally:
        tab.close()
    assert not errors, f"uncaught errors in the page: {errors}"


# ---- helpers: drawing and reading the page -----------------------------------------------


def canvas_point(page: Any, x: float, y: float) -> tuple[float, float]:
    box = page.locator("#canvas").bounding_box()
    return box["x"] + x * box["width"], box["y"] + y * box["height"]


def draw_with_mouse(page: Any, strokes: list[list[tuple[float, float]]]) -> None:
    for stroke in strokes:
        page.mouse.move(*canvas_point(page, *stroke[0]))
        page.mouse.down()
        for point in stroke[1:]:
            page.mouse.move(*canvas_point(page, *point), steps=12)
        page.mouse.up()


def draw_with_touch(page: Any, stroke: list[tuple[float, float]], steps: int = 12) -> None:
    """One finger stroke, as real touch events (the page sees pointerType "touch")."""
    cdp = page.context.new_cdp_session(page)

    def touch(kind: str, x: float, y: float) -> None:
        points = [] if kind == "touchEnd" else [{"x": x, "y": y}]
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    x0, y0 = canvas_point(page, *stroke[0])
    touch("touchStart", x0, y0)
    for target in stroke[1:]:
        x1, y1 = canvas_point(page, *target)
        for i in range(1, steps + 1):
            touch("touchMove", x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps)
        x0, y0 = x1, y1
    touch("touchEnd", x0, y0)
    cdp.detach()


def wait_for_answer(page: Any) -> str:
    """Wait until no request is in flight or queued and an answer is shown; return its state."""
    page.wait_for_function(
        "() => { const r = document.getElementById('result');"
        " return r.dataset.busy === 'false' && r.dataset.state !== 'empty'; }"
    )
    return page.locator("#result").get_attribute("data-state")


def shown(page: Any) -> dict[str, Any]:
    """What the page shows: the digit text, status text, bar values (data and text)."""
    bars = page.locator("#bars > li")
    return {
        "digit": page.locator("#digit").inner_text().strip(),
        "status": page.locator("#status").inner_text().strip(),
        "count": bars.count(),
        "probabilities": [float(p) for p in bars.evaluate_all(
            "items => items.map(li => li.dataset.probability)")],
        "percent_texts": bars.locator(".bar-value").all_inner_texts(),
        "best": bars.evaluate_all(
            "items => items.filter(li => li.classList.contains('best'))"
            ".map(li => Number(li.dataset.digit))"),
    }  # fmt: skip


def canvas_png(page: Any) -> bytes:
    data_url = page.evaluate("() => document.getElementById('canvas').toDataURL('image/png')")
    return base64.b64decode(data_url.split(",", 1)[1])


def predict(served: Served, png: bytes, name: str = "drawing.png") -> dict[str, Any]:
    response = served.client.post("/predict", files={"image": (name, png, "image/png")})
    assert response.status_code == 200, response.text
    return response.json()


def assert_shows(page: Any, expected: dict[str, Any]) -> dict[str, Any]:
    """The page shows ``expected`` (a /predict answer): digit, ten bars, highlighted best."""
    seen = shown(page)
    assert seen["digit"] == str(expected["digit"]), seen
    assert seen["count"] == 10
    assert seen["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-9)
    assert sum(seen["probabilities"]) == pytest.approx(1.0, abs=1e-5)
    percents = [float(text.rstrip("%")) for text in seen["percent_texts"]]
    assert len(percents) == 10 and sum(percents) == pytest.approx(100.0, abs=0.6)
    assert seen["best"] == [expected["digit"]]
    assert page.locator("#model-version").inner_text() == expected["model_version"]
    return seen


# ---- the tests ---------------------------------------------------------------------------


def test_page_and_assets_are_served_under_ui(served):
    # Relative, so it resolves against the address the browser used, proxy or not.
    redirect = served.client.get("/ui?x=1", headers={"Host": "proxy.example:8443"})
    assert (redirect.status_code, redirect.headers["location"]) == (307, "ui/?x=1")
    for path, kind in [("/ui/", "text/html"), ("/ui/app.js", "javascript"),
                       ("/ui/style.css", "text/css")]:  # fmt: skip
        response = served.client.get(path)
        assert response.status_code == 200 and kind in response.headers["content-type"], path
    html = served.client.get("/ui/").text
    assert "http://" not in html and "https://" not in html  # nothing from a CDN
    assert served.client.get("/ui/missing.js").status_code == 404


@pytest.mark.browser
def test_drawing_shows_the_services_answer_and_a_screenshot(page, served, tmp_path):
    assert shown(page)["digit"] == "\u2013" and shown(page)["status"] == "Draw a digit"
    draw_with_mouse(page, STROKES[7])
    assert wait_for_answer(page) == "done"
    expected = predict(served, canvas_png(page))
    seen = assert_shows(page, expected)
    assert seen["status"].startswith(f"Looks like a {expected['digit']}")

    shot = tmp_path / "ui-screenshot.png"
    page.screenshot(path=str(shot), full_page=True)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, SCREENSHOT)
    with Image.open(shot) as img:
        assert img.width >= 600 and img.height >= 400


def clear(page: Any) -> None:
    page.get_by_role("button", name="Clear the drawing and the prediction").click()


@pytest.mark.browser
@pytest.mark.parametrize("pen", PEN_WIDTHS)
def test_trained_model_recognises_each_drawn_digit(page, pen):
    page.locator("#pen").fill(str(pen))
    read = {}
    for digit, strokes in STROKES.items():
        clear(page)
        draw_with_mouse(page, strokes)
        assert wait_for_answer(page) == "done"
        read[digit] = int(shown(page)["digit"])
    right = [d for d, r in read.items() if d == r]
    assert len(right) >= 9, f"pen {pen}px: drawn -> read {read}"


@pytest.mark.browser
def test_page_shows_what_the_model_saw(page, served):
    draw_with_mouse(page, STROKES[4])
    assert wait_for_answer(page) == "done"
    answer = served.client.post(
        "/predict",
        files={"image": ("drawing.png", canvas_png(page), "image/png")},
        data={"return_input": "true"},
    ).json()
    if "model_input" not in answer:
        pytest.skip("the service does not return model_input yet (return_input: issue 11)")
    assert page.locator("#seen").is_visible()
    size = page.locator("#seen-img").evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert size == [28, 28]
    box = page.locator("#seen-img").bounding_box()
    assert box["width"] >= 100 and box["height"] >= 100  # enlarged, not a 28 px speck
    shown_png = page.locator("#seen-img").get_attribute("src").split(",", 1)[1]
    assert shown_png == answer["model_input"]  # exactly what the model got for this drawing


@pytest.mark.browser
def test_touch_draws_and_predicts(page, served):
    assert page.locator("#canvas").evaluate("c => getComputedStyle(c).touchAction") == "none"
    page.evaluate(
        "() => { window.pointerTypes = new Set(); document.getElementById('canvas')"
        ".addEventListener('pointerdown', e => window.pointerTypes.add(e.pointerType)); }"
    )
    draw_with_touch(page, STROKES[1][0])
    assert wait_for_answer(page) == "done"
    assert page.evaluate("() => [...window.pointerTypes]") == ["touch"]
    expected = predict(served, canvas_png(page))
    assert_shows(page, expected)
    assert expected["digit"] == 1


@pytest.mark.browser
def test_clear_resets_canvas_digit_and_bars(page):
    draw_with_mouse(page, STROKES[7])
    assert wait_for_answer(page) == "done"
    clear(page)
    seen = shown(page)
    assert seen["digit"] == "\u2013" and seen["status"] == "Draw a digit"
    assert seen["count"] == 10 and seen["probabilities"] == [0.0] * 10 and seen["best"] == []
    assert page.locator("#result").get_attribute("data-state") == "empty"
    lit = page.evaluate(
        "() => { const c = document.getElementById('canvas');"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] || d[i+1] || d[i+2]) n++;"
        " return n; }"
    )
    assert lit == 0  # all black again


@pytest.mark.browser
def test_upload_shows_the_services_answer(page, served, digit_png, tmp_path):
    upload = tmp_path / "seven.png"
    upload.write_bytes(digit_png)  # black-on-white "7", off-centre on a 300x200 canvas
    page.set_input_files("#file", str(upload))
    assert wait_for_answer(page) == "done"
    expected = predict(served, digit_png, "seven.png")
    assert_shows(page, expected)
    assert page.locator("#preview").is_visible()
    assert page.locator("#preview-name").inner_text() == "seven.png"
    assert expected["digit"] == 7


@pytest.mark.browser
def test_blank_upload_asks_for_a_digit_and_junk_shows_the_error(page, tmp_path, encode_image):
    blank = tmp_path / "blank.png"
    blank.write_bytes(encode_image(Image.new("L", (64, 64), 255)))
    page.set_input_files("#file", str(blank))
    assert wait_for_answer(page) == "no-ink"  # the service's 422
    seen = shown(page)
    assert "draw a digit" in seen["status"].lower() and seen["digit"] == "\u2013"
    assert seen["probabilities"] == [0.0] * 10

    junk = tmp_path / "junk.png"
    junk.write_bytes(b"definitely not an image")
    page.set_input_files("#file", str(junk))
    assert wait_for_answer(page) == "error"
    status = shown(page)["status"]
    assert status.startswith("Error 400") and "not a PNG" in status


@pytest.mark.browser
def test_wrong_answers_can_be_corrected_and_the_page_confirms_it(page, served, tmp_path):
    assert not page.locator("#feedback").is_visible()  # nothing to correct yet
    draw_with_mouse(page, STROKES[7])
    assert wait_for_answer(page) == "done"
    assert page.locator("#feedback").is_visible()
    assert page.locator("#feedback-prompt").inner_text() == "Wrong? It was a \u2026"
    buttons = page.locator("#feedback-digits button")
    assert buttons.all_inner_texts() == [str(d) for d in range(10)]

    said = (int(shown(page)["digit"]) + 1) % 10  # whatever it read, the user says otherwise
    a_said = f"{'an' if said == 8 else 'a'} {said}"
    page.get_by_role("button", name=f"It was {a_said}").click()
    page.wait_for_function("() => ['sent', 'error'].includes("
                           "document.getElementById('feedback').dataset.state)")  # fmt: skip
    status = page.locator("#feedback-status").inner_text()
    assert page.locator("#feedback").get_attribute("data-state") == "sent", status
    assert status == f"Thanks! Correction received: it was {a_said}."
    pressed = buttons.evaluate_all("bs => bs.map(b => b.getAttribute('aria-pressed'))")
    assert pressed == ["true" if d == said else "false" for d in range(10)]

    shot = tmp_path / "ui-feedback.png"
    page.screenshot(path=str(shot), full_page=True)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, SCREENSHOT.with_name("ui-feedback.png"))

    # What the page sent landed in the real store, for the drawing the log has as "ui".
    store = CorrectionsStore(os.environ["MNIST_FEEDBACK_DB"])
    (request_id,) = [r[0] for r in store.corrections() if r[1] == said][-1:]
    records = {r["request_id"]: r for r in read_log(Path(os.environ["MNIST_INFERENCE_LOG_DIR"]))}
    assert records[request_id]["source"] == "ui"
    assert records[request_id]["digit"] == int(shown(page)["digit"]) != said

    clear(page)  # a new drawing starts with a fresh question
    assert not page.locator("#feedback").is_visible()
