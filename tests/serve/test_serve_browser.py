"""The serve web page in a real headless Chromium, against a real uvicorn server on 127.0.0.1.

Pick an example, pick two models, submit, see two summary cards with latencies; the same with
bearer-token auth on; phone layout. Needs Debian's ``chromium`` and ``chromium-driver`` and
``selenium``; skipped without them. Screenshots go to ``test-artifacts/`` (git-ignored).
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
uvicorn = pytest.importorskip("uvicorn")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from sumlab.config import ModelConfig, PeftSettings  # noqa: E402
from sumlab.models.loading import load_model, load_tokenizer  # noqa: E402
from sumlab.models.peft_methods import add_peft  # noqa: E402
from sumlab.serve.app import create_app  # noqa: E402
from sumlab.serve.registry import NamedPath, load_registry  # noqa: E402
from sumlab.serve.schemas import ServeLimits  # noqa: E402

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
TOKEN = "browser-token-0123456789abcdef"
LIMITS = ServeLimits(default_max_new_tokens=12, batch_wait_ms=20)


@pytest.fixture(scope="module")
def registry(tiny_model_dir, tmp_path_factory):
    """The tiny base with two LoRA adapters whose weights are moved by seeded noise (no training needed)."""
    config = ModelConfig(name_or_path=str(tiny_model_dir), dtype="float32")
    root = tmp_path_factory.mktemp("browser-adapters")
    entries = []
    for seed, name in enumerate(["formal", "casual"], start=1):
        model = add_peft(load_model(config), PeftSettings(method="lora", r=4, alpha=4))
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.requires_grad:
                    parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.3)
        model.save_pretrained(root / name)
        load_tokenizer(config).save_pretrained(root / name)
        entries.append(NamedPath(name, root / name))
    return load_registry(config, entries)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class BackgroundServer:
    """uvicorn on 127.0.0.1 in a thread of this process, stopped on exit."""

    def __init__(self, app):
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc_info) -> None:
        self.server.should_exit = True
        self.thread.join(20)


@pytest.fixture(scope="module")
def open_url(registry):
    with BackgroundServer(create_app(registry, LIMITS)) as url:
        yield url


@pytest.fixture(scope="module")
def auth_url(registry):
    with BackgroundServer(create_app(registry, LIMITS, api_token=TOKEN)) as url:
        yield url


def model_boxes(driver) -> list:
    return driver.find_elements(By.CSS_SELECTOR, "#models input[type=checkbox]")


def choose_models(driver, names: set[str]) -> None:
    for box in model_boxes(driver):
        if (box.get_attribute("value") in names) != box.is_selected():
            box.find_element(By.XPATH, "..").click()


def cards(driver) -> list[dict]:
    return driver.execute_script("""return Array.from(document.querySelectorAll('#results .card')).map(card => ({
        model: card.dataset.model, summary: card.querySelector('.summary').textContent,
        latency: card.querySelector('.latency').textContent}));""")


def summarize_example(driver, models: set[str]) -> list[dict]:
    """Load the second example, pick ``models``, submit, and wait for their cards."""
    Select(driver.find_element(By.ID, "example")).select_by_index(2)
    assert driver.find_element(By.ID, "dialogue").get_property("value").startswith("#Person1#: Excuse me")
    choose_models(driver, models)
    driver.find_element(By.ID, "submit").click()
    WebDriverWait(driver, 30).until(
        lambda d: len(cards(d)) == len(models) and d.find_element(By.ID, "submit").is_enabled()
    )
    return cards(driver)


def set_viewport(driver, width: int, height: int, mobile: bool = False) -> None:
    """Emulate an exact viewport (window sizes include browser chrome, so they are not exact)."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
    )


def test_compare_two_models_on_an_example_and_screenshot(browser, open_url):
    browser.get(open_url + "/")
    WebDriverWait(browser, 15).until(lambda d: len(model_boxes(d)) == 3)
    assert [box.get_attribute("value") for box in model_boxes(browser)] == ["base", "formal", "casual"]
    assert not browser.find_element(By.ID, "auth").is_displayed(), "no token field without auth"
    results = summarize_example(browser, {"formal", "casual"})
    assert [card["model"] for card in results] == ["formal", "casual"]
    for card in results:
        assert card["summary"].strip()
        assert card["latency"].split(" ms")[0].isdigit() and "tokens" in card["latency"]
    assert browser.find_element(By.ID, "status").text.startswith("Done in")
    assert not browser.find_element(By.ID, "error").is_displayed()
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        set_viewport(browser, 1280, 900)
        assert browser.save_screenshot(str(ARTIFACTS / "serve.png"))
        set_viewport(browser, 390, 844, mobile=True)
        overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, "the page scrolls sideways on a phone"
        widths = browser.execute_script(
            "return Array.from(document.querySelectorAll('#results .card')).map(c => c.getBoundingClientRect().right)"
        )
        assert max(widths) <= 390, "cards stack inside the phone's width"
        height = browser.execute_script("return document.documentElement.scrollHeight")
        set_viewport(browser, 390, min(height, 4000), mobile=True)
        assert browser.save_screenshot(str(ARTIFACTS / "serve-phone.png"))
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    for name in ("serve.png", "serve-phone.png"):
        assert (ARTIFACTS / name).read_bytes().startswith(b"\x89PNG")


def test_errors_show_as_text(browser, open_url):
    browser.get(open_url + "/")
    WebDriverWait(browser, 15).until(lambda d: len(model_boxes(d)) == 3)
    choose_models(browser, set())
    browser.find_element(By.ID, "dialogue").send_keys("#Person1#: Hi.\n#Person2#: Hello.")
    browser.find_element(By.ID, "submit").click()
    assert browser.find_element(By.ID, "error").text == "Pick at least one model."
    choose_models(browser, {"base"})
    number = browser.find_element(By.ID, "max-new-tokens")
    number.clear()
    number.send_keys("100000")
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 15).until(lambda d: d.find_element(By.ID, "error").is_displayed())
    assert "max_new_tokens=100000 is over this server's limit of 256" in browser.find_element(By.ID, "error").text


def test_auth_asks_for_the_token_and_then_works(browser, auth_url):
    browser.get(auth_url + "/")
    WebDriverWait(browser, 15).until(lambda d: d.find_element(By.ID, "auth").is_displayed())
    assert model_boxes(browser) == []
    token = browser.find_element(By.ID, "token")
    token.send_keys("wrong-token")
    browser.find_element(By.ID, "use-token").click()
    WebDriverWait(browser, 15).until(lambda d: d.find_element(By.ID, "error").text == "The server refused this token.")
    assert model_boxes(browser) == []
    token.clear()
    token.send_keys(TOKEN)
    browser.find_element(By.ID, "use-token").click()
    WebDriverWait(browser, 15).until(lambda d: len(model_boxes(d)) == 3)
    results = summarize_example(browser, {"base", "casual"})
    assert [card["model"] for card in results] == ["base", "casual"]
    assert browser.execute_script("return window.localStorage.length + window.sessionStorage.length") == 0
    assert "browser-token" not in browser.execute_script("return document.cookie")
