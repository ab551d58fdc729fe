"""report.html in a real headless Chromium: tables, plots, sorting, filtering, wins/losses, phone layout.

Needs Debian's ``chromium`` and ``chromium-driver`` packages and ``selenium``; skipped without them.
Screenshots go to ``test-artifacts/`` at the repository root (git-ignored).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sumlab.evaluation.schema import ExampleRow, Results
from sumlab.report import write_report
from sumlab.report.sample import sample_results

pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
EXAMPLES = 40


@pytest.fixture(scope="module")
def results() -> Results:
    return sample_results(examples=EXAMPLES)


@pytest.fixture(scope="module")
def report_url(results, tmp_path_factory) -> str:
    paths = write_report(results, tmp_path_factory.mktemp("browser-report"))
    return paths["html"].resolve().as_uri()


@pytest.fixture()
def page(browser, report_url):
    browser.set_window_size(1280, 900)
    browser.get(report_url)
    WebDriverWait(browser, 10).until(lambda driver: table_ids(driver))
    return browser


def table_ids(driver) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#example-table tbody tr')).map(r => r.dataset.id);"
    )


def first_row_score(driver, model: str) -> str:
    cell = driver.find_element(By.CSS_SELECTOR, f'#example-table tbody tr:first-child td[data-model="{model}"] .score')
    return cell.text


def list_ids(driver, list_id: str) -> list[str]:
    script = f"return Array.from(document.querySelectorAll('#{list_id} li')).map(item => item.dataset.id);"
    return driver.execute_script(script)


def rouge1(example: ExampleRow, model: str) -> float:
    return example.scores[model]["rouge1"]


def expected_wins(results: Results, a: str, b: str) -> list[str]:
    """Ids where model a beats model b most on ROUGE-1, ties in input order, top 10."""
    gaps = [
        (rouge1(example, a) - rouge1(example, b), index, example.id) for index, example in enumerate(results.examples)
    ]
    wins = sorted((gap for gap in gaps if gap[0] > 0), key=lambda gap: (-gap[0], gap[1]))
    return [example_id for _, _, example_id in wins[:10]]


def test_tables_and_plots_are_visible(page, results):
    rouge_table = page.find_element(By.ID, "rouge-table")
    assert rouge_table.is_displayed()
    assert len(rouge_table.find_elements(By.CSS_SELECTOR, "tbody tr")) == len(results.models)
    assert "0.4210" in rouge_table.text
    widths = page.execute_script(
        "return Array.from(document.querySelectorAll('img.plot')).map(i => i.complete ? i.naturalWidth : 0);"
    )
    assert len(widths) == 3 and all(width > 0 for width in widths)
    assert len(table_ids(page)) == EXAMPLES
    assert page.find_element(By.ID, "row-count").text == f"Showing all {EXAMPLES} examples."
    assert page.execute_script("return document.querySelectorAll('script').length") == 2


def test_sorting_by_a_models_score(page, results):
    before = table_ids(page)
    page.find_element(By.CSS_SELECTOR, 'button[data-sort="score:full"]').click()
    best = max(results.examples, key=lambda example: rouge1(example, "full"))
    assert first_row_score(page, "full") == f"ROUGE-1 {rouge1(best, 'full'):.4f}"
    descending = table_ids(page)
    assert descending != before
    page.find_element(By.CSS_SELECTOR, 'button[data-sort="score:full"]').click()
    worst = min(results.examples, key=lambda example: rouge1(example, "full"))
    assert first_row_score(page, "full") == f"ROUGE-1 {rouge1(worst, 'full'):.4f}"
    header = page.find_element(By.CSS_SELECTOR, 'button[data-sort="score:full"]').find_element(By.XPATH, "..")
    assert header.get_attribute("aria-sort") == "ascending"


def test_sorting_by_the_difference_between_two_models(page, results):
    page.find_element(By.CSS_SELECTOR, 'button[data-sort="delta"]').click()
    assert table_ids(page)[0] == expected_wins(results, "full", "original")[0]


def test_filter_keeps_only_matching_rows(page, results):
    term = "alert(1)"
    matching = [
        example.id
        for example in results.examples
        if term in " ".join([example.dialogue, *example.references, *example.predictions.values()])
    ]
    assert 0 < len(matching) < EXAMPLES
    page.find_element(By.ID, "filter").send_keys(term)
    WebDriverWait(page, 5).until(lambda driver: len(table_ids(driver)) == len(matching))
    assert table_ids(page) == matching
    assert page.find_element(By.ID, "row-count").text == f"Showing {len(matching)} of {EXAMPLES} examples."
    # The markup in the dialogue shows as text and never became an element.
    page.find_element(By.CSS_SELECTOR, "#example-table tbody tr:first-child details summary").click()
    assert "<script>alert(1)</script>" in page.find_element(By.CSS_SELECTOR, ".dialogue-text").text
    assert page.execute_script("return document.querySelectorAll('script').length") == 2


def test_wins_and_losses_follow_the_selects(page, results):
    assert page.find_element(By.ID, "wins-title").text == "Where full fine-tuning beats zero-shot base most"
    assert list_ids(page, "wins") == expected_wins(results, "full", "original")
    assert list_ids(page, "losses") == expected_wins(results, "original", "full")
    Select(page.find_element(By.ID, "model-a")).select_by_value("lora")
    Select(page.find_element(By.ID, "model-b")).select_by_value("full")
    assert page.find_element(By.ID, "wins-title").text == "Where LoRA beats full fine-tuning most"
    assert list_ids(page, "wins") == expected_wins(results, "lora", "full")
    assert list_ids(page, "losses") == expected_wins(results, "full", "lora")
    first_win = page.find_element(By.CSS_SELECTOR, "#wins li:first-child button.link")
    first_win.click()
    WebDriverWait(page, 5).until(lambda driver: table_ids(driver)[0] == first_win.text)


def test_long_tables_render_in_pages(browser, tmp_path):
    paths = write_report(sample_results(examples=230), tmp_path)
    browser.get(paths["html"].resolve().as_uri())
    WebDriverWait(browser, 10).until(lambda driver: table_ids(driver))
    assert len(table_ids(browser)) == 100
    assert browser.find_element(By.ID, "row-count").text == "Showing the first 100 of 230 examples."
    more = browser.find_element(By.ID, "show-more")
    more.click()
    more.click()
    assert len(table_ids(browser)) == 230 and not more.is_displayed()
    assert browser.find_element(By.ID, "row-count").text == "Showing all 230 examples."


def set_viewport(driver, width: int, height: int, mobile: bool = False) -> None:
    """Emulate an exact viewport (window sizes include browser chrome, so they are not exact)."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
    )


def test_screenshots_and_phone_layout(page):
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        set_viewport(page, 1280, 900)
        height = page.execute_script("return document.documentElement.scrollHeight")
        set_viewport(page, 1280, min(height, 16000))
        assert page.save_screenshot(str(ARTIFACTS / "report.png"))
        set_viewport(page, 390, 844, mobile=True)
        overflow = page.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, "the page scrolls sideways on a phone; only tables may scroll inside their boxes"
        assert page.save_screenshot(str(ARTIFACTS / "report-phone.png"))
        height = page.execute_script("return document.documentElement.scrollHeight")
        set_viewport(page, 390, min(height, 30000), mobile=True)
        assert page.save_screenshot(str(ARTIFACTS / "report-phone-full.png"))
    finally:
        page.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    for name in ("report.png", "report-phone.png", "report-phone-full.png"):
        assert (ARTIFACTS / name).read_bytes().startswith(b"\x89PNG")
