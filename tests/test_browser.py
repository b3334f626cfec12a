"""Every lecture as a learner meets it: JupyterLab in headless Chromium, Run All from the menu.

New lectures are picked up by the glob below without edits. Screenshots go to tests/artifacts/browser/.
"""

import json
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from utils.lectures import ROOT

from .jupyterlab import CHROMIUM, CHROMIUM_ARGS, LabServer

pytestmark = pytest.mark.runs_for(seconds=250)  # see conftest.py: started first

LECTURES = sorted((ROOT / "lectures").glob("*.ipynb"))
ARTIFACTS = ROOT / "tests" / "artifacts" / "browser"
TEXT_FALLBACKS = ("interactive(children=", "IntSlider(value=", "VBox(children=", "Error displaying widget",
                  "IProgress not found")

@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"the browser tests need Chromium at {CHROMIUM}: `make test` installs it with apt-get")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory):
    server = LabServer(LECTURES, tmp_path_factory.mktemp("lab"))
    yield server
    server.stop()


@pytest.fixture
def lab(lab_server):
    """The module's server; after each test its kernels are shut down, so that a lecture that failed or ran out
    of time does not go on computing beside the next one."""
    yield lab_server
    lab_server.shut_down_kernels()


def code_cells(path):
    return [c for c in json.loads(path.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]


def open_and_run_all(browser, server, path, timeout=300):
    """Open a notebook, wait for its kernel, Run All Cells from the Run menu, wait until every cell ran."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(f"{server.url}/lab/tree/{path.name}?reset")  # ?reset: no notebook restored from an earlier page
    wait_for_idle_kernel(page)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    n_code = len(code_cells(path))
    deadline = time.monotonic() + timeout
    while True:
        prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_text_contents()
        if sum(bool(re.fullmatch(r"\s*\[\d+\]:\s*", p)) for p in prompts) == n_code:
            break
        assert time.monotonic() < deadline, f"not every cell ran within {timeout} s: {prompts}"
        time.sleep(0.5)
    wait_for_idle_kernel(page)
    return page


def wait_for_idle_kernel(page, timeout=90):
    """Idle for 1 s with a real kernel: the indicator says idle for a moment before any kernel exists."""
    deadline, idle_since = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        name = page.locator('[data-jp-item-name="kernelName"]')
        status = page.locator(".jp-Notebook-ExecutionIndicator")
        ready = (name.count() and "No Kernel" not in name.first.text_content()
                 and status.count() and status.first.get_attribute("data-status") == "idle")
        idle_since = (idle_since or time.monotonic()) if ready else None
        if idle_since and time.monotonic() - idle_since > 1.0:
            return
        time.sleep(0.2)
    raise AssertionError("the kernel did not become idle")


def assert_no_errors(page):
    errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    assert errors.count() == 0, f"error or stderr output: {errors.first.text_content()[:500]}"
    assert page.errors == [], f"JavaScript errors: {page.errors}"


def assert_widgets_live(page, path):
    """Every widget the notebook creates is rendered by the widget front end, none falls back to text."""
    text = page.locator(".jp-Notebook").text_content()
    for fallback in TEXT_FALLBACKS:
        assert fallback not in text, f"a widget fell back to text: {fallback!r}"
    source = "\n".join("".join(c["source"]) for c in code_cells(path))
    if "widgets." in source:
        assert page.locator(".jupyter-widgets.widget-slider, .jupyter-widgets .widget-slider").count() > 0
        outputs = page.locator(".widget-interact .widget-output")
        assert outputs.count() > 0 and all(o.inner_text().strip() or o.locator("img").count() for o in outputs.all())
    if "unit_viewer(" in source:  # text coloured by a unit's activation, one span per character
        assert page.locator('.widget-html span[style*="background"]').count() > 1000
    if "trange(" in source or "tqdm(" in source:
        assert page.locator(".widget-hprogress").count() > 0, "tqdm progress bars are not widgets"


def assert_check_boxes(page, path):
    """One result box per check cell; in a shipped lecture each says 'not implemented, using the reference'."""
    source = "\n".join("".join(c["source"]) for c in code_cells(path))
    n_checks = len(re.findall(r'\bcheck\("\w+"', source))
    boxes = page.locator(".course-check")
    assert boxes.count() == n_checks
    assert page.locator(".course-check-not-implemented").count() == n_checks
    assert all("uses the reference" in box.text_content() for box in boxes.all())  # implementation, or pair


def assert_a_widget_responds(page):
    """Moving the first interactive slider one step redraws its output (a figure or text)."""
    interact = page.locator(".widget-interact").filter(has=page.locator(".widget-slider")).first
    output = interact.locator(".widget-output").first
    before = output.inner_html()
    handle = interact.locator(".noUi-handle").first
    handle.scroll_into_view_if_needed()
    handle.focus()
    page.keyboard.press("ArrowRight")
    deadline = time.monotonic() + 30
    while output.inner_html() == before:
        assert time.monotonic() < deadline, "moving the slider did not change the output"
        time.sleep(0.2)
    wait_for_idle_kernel(page)


def assert_a_text_box_responds(page, text="is there a zebra ?"):
    """Typing into the first interactive text box (and pressing Enter) redraws its output, which then shows the
    text: a prime the sampler continues, or a question whose unknown word the answer names, never a traceback."""
    interact = page.locator(".widget-interact").filter(has=page.locator(".widget-text input")).first
    output = interact.locator(".widget-output").first
    before = output.inner_html()
    box = interact.locator(".widget-text input").first
    box.scroll_into_view_if_needed()
    box.fill(text)
    box.press("Enter")
    deadline = time.monotonic() + 60
    while output.inner_html() == before or "zebra" not in output.inner_text():
        assert time.monotonic() < deadline, f"typing {text!r} did not redraw the output: {output.inner_text()[:300]}"
        time.sleep(0.2)
    wait_for_idle_kernel(page)
    assert "Traceback" not in output.inner_text()


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.stem)
def test_lecture_runs_in_jupyterlab(browser, lab, path):
    page = open_and_run_all(browser, lab, path)
    try:
        assert_no_errors(page)
        assert_widgets_live(page, path)
        assert_check_boxes(page, path)
        if page.locator(".widget-interact .widget-slider").count():
            assert_a_widget_responds(page)
            assert_no_errors(page)  # redrawing raised nothing either
        if page.locator(".widget-interact .widget-text input").count():
            assert_a_text_box_responds(page)
            assert_no_errors(page)
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{path.stem}.png"))
        page.close()


def test_negative_control_widgets_without_their_front_end_are_caught(browser, tmp_path):
    """With the widget manager extension disabled, widgets fall back to text and the test must notice."""
    path = next(p for p in LECTURES if "widgets." in "".join("".join(c["source"]) for c in code_cells(p)))
    server = LabServer([path], tmp_path, disabled_extensions=["@jupyter-widgets/jupyterlab-manager"])
    try:
        page = open_and_run_all(browser, server, path)
        with pytest.raises(AssertionError):
            assert_widgets_live(page, path)
        page.close()
    finally:
        server.stop()
