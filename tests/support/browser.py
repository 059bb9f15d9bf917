"""Debian's chromium, driven through its own chromedriver by Selenium: the clinician pages are tested in a real
browser, and nothing is downloaded at run time (``make deps`` installs both)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
LAPTOP = (1366, 900)
TABLET = (820, 1180)  # an iPad Air held upright, in CSS pixels


def _binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(f"none of {', '.join(names)} is installed; run make deps (it installs chromium and its driver)")


@contextmanager
def chromium(size: tuple[int, int] = LAPTOP, language: str = "en-GB") -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = _binary("chromium", "chromium-browser")
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in CI containers
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={size[0]},{size[1]}",
        f"--lang={language}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(_binary("chromedriver")), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: webdriver.Chrome, name: str) -> Path:
    """The whole page as ``docs/images/<name>.png`` (the docs show what the test saw)."""
    IMAGES.mkdir(parents=True, exist_ok=True)
    width = driver.execute_script("return document.documentElement.scrollWidth")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(max(width, 320), min(max(height, 400), 4000))
    path = IMAGES / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
