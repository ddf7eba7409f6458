"""Headless Chromium driven by Selenium (Debian's chromium + chromium-driver), one per test module.

Each browser gets a fresh profile directory, so no cookie survives from one module to the next.
"""
from __future__ import annotations

import shutil
import tempfile
import time

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def new_browser(lang: str = "ru", extra_args=()):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    profile = tempfile.mkdtemp(prefix="kit-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--no-first-run", "--disable-extensions", "--window-size=1280,900",
              f"--user-data-dir={profile}", f"--lang={lang}", *extra_args):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    drv.set_page_load_timeout(30)
    drv._kit_profile = profile
    return drv


def quit_browser(drv) -> None:
    try:
        drv.quit()
    finally:
        shutil.rmtree(drv._kit_profile, ignore_errors=True)


def wait_for(cond, timeout: float = 10.0, interval: float = 0.1, what: str = "condition"):
    """Poll COND() until it returns something truthy; fail with WHAT after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            v = cond()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - the page may be mid-update
            last_exc = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}"
                         + (f" (last error: {last_exc})" if last_exc else ""))


def login(drv, base_url: str, user: str, password: str) -> None:
    from selenium.webdriver.common.by import By
    drv.get(base_url + "/login")
    drv.find_element(By.ID, "user").clear()
    drv.find_element(By.ID, "user").send_keys(user)
    drv.find_element(By.ID, "password").send_keys(password)
    drv.find_element(By.ID, "submit").click()
    wait_for(lambda: drv.find_elements(By.ID, "current-user") or drv.find_elements(By.ID, "error"),
             what="the page after login")


@pytest.fixture(scope="module")
def browser():
    drv = new_browser()
    yield drv
    quit_browser(drv)


SIZES = ((1280, 900), (390, 844))


def shots_dir():
    import os
    from pathlib import Path
    d = Path(os.environ.get("ASTERISK_KIT_SCREENSHOTS") or "/tmp/asterisk-kit-screenshots")
    d.mkdir(parents=True, exist_ok=True)
    return d


def overflow(drv) -> tuple:
    """(document width, viewport width) as the browser measures them: a page fits when the first is
    not larger than the second (no horizontal scrolling)."""
    return tuple(drv.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth]"))


def screenshots_fit(drv, url: str, name: str, sizes=SIZES, ready=None) -> dict:
    """Open URL at each window size, save NAME-WxH.png in the screenshots folder and return
    {size: (document width, viewport width)} for the sizes where the page is wider than the screen
    (an empty dict: it fits everywhere). READY(drv), if given, is waited for before measuring."""
    too_wide = {}
    try:
        for w, h in sizes:
            drv.set_window_size(w, h)
            drv.get(url)
            if ready is not None:
                wait_for(lambda: ready(drv), what=f"{name} ready at {w}x{h}")
            # set_window_size sets the outer window; make the inner viewport the wanted size.
            iw, ih = drv.execute_script("return [window.innerWidth, window.innerHeight]")
            if (iw, ih) != (w, h):
                drv.set_window_size(w + (w - iw), h + (h - ih))
                time.sleep(0.2)
            drv.save_screenshot(str(shots_dir() / f"{name}-{w}x{h}.png"))
            doc, view = overflow(drv)
            if doc > view:
                too_wide[f"{w}x{h}"] = (doc, view)
    finally:
        drv.set_window_size(1280, 900)
    return too_wide
