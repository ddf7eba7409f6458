"""A campaign's numbers page in headless Chromium (no Asterisk needed): add, edit and delete with
confirmation, errors at the top with the typed input kept after the redirect, search and pages, clear
and replace with confirmation, Windows-1251 CSV and XLSX uploads with their per-line report, and
screenshots at desktop and phone width in Russian and English with no horizontal overflow."""
from __future__ import annotations

import sqlite3
import subprocess

import pytest
from selenium.webdriver.common.by import By

from testbed.browser import login, screenshots_fit, shots_dir, wait_for
from testbed.kitcli import BIN, kit
from testbed.webserver import WebServer
from tests.test_dialer_import import make_config, xlsx_bytes

pytestmark = [pytest.mark.browser]
PASSWORD = "numbers pass 1"


@pytest.fixture(scope="module")
def site(tmp_path_factory, browser):
    d = tmp_path_factory.mktemp("dialer-numbers")
    cfg = make_config(d)
    subprocess.run([str(BIN), "--config", str(cfg), "user", "add", "olga", "--password-stdin"],
                   input=PASSWORD + "\n", text=True, check=True, capture_output=True, timeout=60)
    kit(cfg, "dialer", "status", check=True)             # the store, with campaign 1
    db = sqlite3.connect(d / "data" / "asterisk-kit.sqlite")
    with db:
        db.execute("INSERT INTO dialer_campaigns (id, name, created, updated) VALUES (2, 'Весенняя акция', 0, 0)")
    srv = WebServer(cfg).start()
    srv.cfg, srv.dir, srv.db = cfg, d, db
    login(browser, srv.url, "olga", PASSWORD)
    yield srv
    srv.stop()
    db.close()


def phones(site, cid):
    return {r[0]: (r[1], r[2]) for r in site.db.execute(
        "SELECT number, digit, comment FROM dialer_phones WHERE campaign_id = ?", (cid,))}


def rows(drv):
    return {tr.get_attribute("data-number"): tr
            for tr in drv.find_elements(By.CSS_SELECTOR, "#number-table tr[data-number]")}


def fill(drv, **fields):
    for fid, v in fields.items():
        el = drv.find_element(By.ID, fid.replace("_", "-"))
        el.clear()
        if v:
            el.send_keys(v)


def notice(drv):
    els = drv.find_elements(By.ID, "notice")
    return els[0].text if els else ""


def top_errors(drv):
    return {li.get_attribute("data-field"): (li.text, li.find_element(By.TAG_NAME, "a").get_attribute("href"))
            for li in drv.find_elements(By.CSS_SELECTOR, "#form-errors li")}


def confirm(drv, accept: bool) -> str:
    alert = wait_for(lambda: drv.switch_to.alert, what="the confirmation dialog")
    text = alert.text
    alert.accept() if accept else alert.dismiss()
    return text


def test_add_edit_delete_with_confirmation_and_errors_kept_across_the_redirect(site, browser):
    drv = browser
    page = site.url + "/dialer/c/1/numbers"
    drv.get(page)
    assert drv.find_element(By.CSS_SELECTOR, "h1").text == "Номера: Campaign 1"
    fill(drv, add_number="+7 (999) 000-00-11", add_digit="", add_comment="Иванов")
    drv.find_element(By.ID, "add").click()
    wait_for(lambda: notice(drv) == "Номер 89990000011 добавлен.", what="the added notice")
    assert "89990000011" in rows(drv)
    drv.get(page)
    # Bad input: the error at the top links to its field, the typed values are kept; a reload shows the
    # page afresh and resubmits nothing.
    fill(drv, add_number="12345", add_digit="#", add_comment="коротко")
    drv.find_element(By.ID, "add").click()
    wait_for(lambda: top_errors(drv), what="errors at the top")
    errs = top_errors(drv)
    assert errs["add-number"][0] == "номер не в формате 8XXXXXXXXXX" and errs["add-number"][1].endswith("#add-number")
    assert errs["add-digit"][0] == "цифра IVR — одна цифра 0–9 или пусто"
    assert [drv.find_element(By.ID, f).get_attribute("value") for f in ("add-number", "add-digit", "add-comment")] \
        == ["12345", "#", "коротко"]
    drv.refresh()
    assert not top_errors(drv) and drv.find_element(By.ID, "add-number").get_attribute("value") == ""
    assert set(phones(site, 1)) == {"89990000011"}

    rows(drv)["89990000011"].find_element(By.CSS_SELECTOR, "a.edit").click()
    wait_for(lambda: drv.find_elements(By.ID, "edit-form"), what="the edit form")
    fill(drv, edit_digit="x", edit_comment="Петров")
    drv.find_element(By.ID, "save-edit").click()
    wait_for(lambda: "edit-digit" in top_errors(drv), what="the edit error at the top")
    assert drv.find_element(By.ID, "edit-comment").get_attribute("value") == "Петров"
    fill(drv, edit_digit="3")
    drv.find_element(By.ID, "save-edit").click()
    wait_for(lambda: notice(drv) == "Номер 89990000011 сохранён.", what="the saved notice")
    assert phones(site, 1) == {"89990000011": ("3", "Петров")}
    assert rows(drv)["89990000011"].find_element(By.CSS_SELECTOR, "td.comment").text == "Петров"

    # Delete asks first: "cancel" keeps the number, "OK" deletes it.
    rows(drv)["89990000011"].find_element(By.CSS_SELECTOR, "button.delete").click()
    assert confirm(drv, False) == "Удалить номер 89990000011 из списка?"
    assert set(phones(site, 1)) == {"89990000011"}
    rows(drv)["89990000011"].find_element(By.CSS_SELECTOR, "button.delete").click()
    confirm(drv, True)
    wait_for(lambda: notice(drv) == "Номер 89990000011 удалён.", what="the deleted notice")
    assert phones(site, 1) == {} and "Список пуст." in drv.find_element(By.ID, "number-table").text


def test_search_and_pages(site, browser, tmp_path):
    drv = browser
    f = tmp_path / "list.csv"
    f.write_text("\n".join(f"8999100{i:04d};;Клиент {i}" for i in range(250)) + "\n", encoding="utf-8")
    kit(site.cfg, "dialer", "import", str(f), "--campaign", "2", check=True)
    drv.get(site.url + "/dialer/c/2/numbers")
    assert drv.find_element(By.ID, "count").text.startswith("Всего номеров: 250")
    assert drv.find_element(By.ID, "page-of").text == "Страница 1 из 3"
    assert len(rows(drv)) == 100 and "89991000000" in rows(drv)
    drv.find_element(By.CSS_SELECTOR, "#pager a[data-page='3']").click()
    wait_for(lambda: drv.find_element(By.ID, "page-of").text == "Страница 3 из 3", what="page 3")
    assert sorted(rows(drv)) == [f"8999100{i:04d}" for i in range(200, 250)]
    fill(drv, q="Клиент 24")
    drv.find_element(By.ID, "search").click()
    wait_for(lambda: drv.find_element(By.ID, "count").text.startswith("Найдено: 11 из 250"), what="search")
    assert sorted(rows(drv)) == sorted(["89991000024"] + [f"8999100{i:04d}" for i in range(240, 250)])
    assert not drv.find_elements(By.ID, "pager")
    fill(drv, q="91000013")
    drv.find_element(By.ID, "search").click()
    wait_for(lambda: list(rows(drv)) == ["89991000013"], what="search by number")
    # Editing from a search keeps the search after saving.
    rows(drv)["89991000013"].find_element(By.CSS_SELECTOR, "a.edit").click()
    wait_for(lambda: drv.find_elements(By.ID, "edit-form"), what="the edit form")
    fill(drv, edit_comment="Клиент 13, VIP")
    drv.find_element(By.ID, "save-edit").click()
    wait_for(lambda: notice(drv), what="saved")
    assert drv.find_element(By.ID, "q").get_attribute("value") == "91000013" and list(rows(drv)) == ["89991000013"]


def test_import_windows_1251_csv_and_xlsx_with_a_report_then_replace_and_clear(site, browser, tmp_path):
    drv = browser
    page = site.url + "/dialer/c/1/numbers"
    drv.get(page)
    fill(drv, import_text="89992000001;1;Первый\n89992000002;;Второй")
    drv.find_element(By.ID, "import-add").click()
    wait_for(lambda: drv.find_elements(By.ID, "report-summary"), what="the first report")
    csv_file = tmp_path / "Клиенты.csv"
    csv_file.write_bytes("Номер;Цифра;Комментарий\r\n89992000001;2;Первый\r\n9992000003;;Третий «Ёлка»\r\n"
                         "12;;короткий\r\n89992000002;;Второй\r\n".encode("cp1251"))
    drv.find_element(By.ID, "import-file").send_keys(str(csv_file))
    drv.find_element(By.ID, "import-add").click()
    wait_for(lambda: "Добавлено: 1," in drv.find_element(By.ID, "report-summary").text, what="the CSV report")
    assert drv.find_element(By.ID, "report-summary").text == \
        "Добавлено: 1, обновлено: 2 (изменено: 1), отклонено: 1."
    assert "кодировка Windows-1251" in drv.find_element(By.ID, "report-read").text
    assert drv.find_element(By.ID, "report-added").text == "Строка 3 89992000003 — Третий «Ёлка»"
    assert drv.find_element(By.ID, "report-updated").text.splitlines() == [
        "Строка 2 89992000001 — цифра: «1» → «2»", "Строка 5 89992000002 — без изменений"]
    assert drv.find_element(By.ID, "report-rejected").text == \
        "Строка 4 12;;короткий — номер не в формате 8XXXXXXXXXX"
    drv.refresh()                                             # a reload shows the report, imports nothing
    assert drv.find_element(By.ID, "report-summary").text.startswith("Добавлено: 1,")
    assert len(phones(site, 1)) == 3

    xlsx = tmp_path / "Список.xlsx"
    xlsx.write_bytes(xlsx_bytes([["Телефон", "Примечание"], [89992000003, "Третий, новый"], ["89992000004", ""],
                                 ["abc", "буквы"]]))
    drv.find_element(By.ID, "import-file").send_keys(str(xlsx))
    drv.find_element(By.ID, "import-add").click()
    wait_for(lambda: "кодировка XLSX" in drv.find_element(By.ID, "report-read").text, what="the XLSX report")
    assert drv.find_element(By.ID, "report-summary").text == \
        "Добавлено: 1, обновлено: 1 (изменено: 1), отклонено: 1."
    assert drv.find_element(By.ID, "report-updated").text == \
        "Строка 2 89992000003 — комментарий: «Третий «Ёлка»» → «Третий, новый»"
    assert drv.find_element(By.ID, "report-rejected").text.startswith("Строка 4 abc")
    # A file that is no list at all: the error at the top, nothing imported.
    bad = tmp_path / "photo.xlsx"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    drv.find_element(By.ID, "import-file").send_keys(str(bad))
    drv.find_element(By.ID, "import-add").click()
    wait_for(lambda: "import-file" in top_errors(drv), what="the file error")
    assert "Это не файл Excel .xlsx" in top_errors(drv)["import-file"][0]
    assert len(phones(site, 1)) == 4

    # Replace asks first; "cancel" changes nothing, "OK" leaves exactly the new list.
    fill(drv, import_text="89993000001\n89992000001;2;Первый")
    drv.find_element(By.ID, "import-replace").click()
    assert "Заменить весь список" in confirm(drv, False)
    assert len(phones(site, 1)) == 4
    drv.find_element(By.ID, "import-replace").click()
    confirm(drv, True)
    wait_for(lambda: drv.find_elements(By.ID, "report-removed"), what="the replace report")
    assert drv.find_element(By.ID, "report-removed").text == \
        "Заменён весь список: удалено номеров, которых нет в новом: 3."
    assert phones(site, 1) == {"89993000001": ("", ""), "89992000001": ("2", "Первый")}

    drv.find_element(By.ID, "clear").click()
    assert confirm(drv, False) == "Удалить все номера кампании (2)? Отменить нельзя."
    assert len(phones(site, 1)) == 2
    drv.find_element(By.ID, "clear").click()
    confirm(drv, True)
    wait_for(lambda: notice(drv) == "Список очищен: удалено номеров: 2.", what="cleared")
    assert phones(site, 1) == {} and len(phones(site, 2)) == 250      # the other campaign is untouched


def test_screenshots_fit_desktop_and_phone_in_russian_and_english(site, browser, tmp_path):
    drv = browser
    f = tmp_path / "long.csv"
    f.write_text("89994000001;;" + "Очень-длинный-комментарий-без-пробелов-" * 4 + "\n12;;плохой\n"
                 + "\n".join(f"8999400{i:04d};{i % 10};Клиент {i}" for i in range(2, 300)), encoding="utf-8")
    drv.get(site.url + "/dialer/c/1/numbers")
    drv.find_element(By.ID, "import-file").send_keys(str(f))
    drv.find_element(By.ID, "import-add").click()
    wait_for(lambda: drv.find_elements(By.ID, "report-summary"), what="the report")
    with_report = drv.current_url
    # The first 20 of each kind are shown; the rest page through (100 a page).
    assert len(drv.find_elements(By.CSS_SELECTOR, "#report-added li")) == 20
    drv.find_element(By.ID, "report-all-added").click()
    wait_for(lambda: drv.find_elements(By.ID, "report-next"), what="the added lines, paged")
    items = drv.find_elements(By.CSS_SELECTOR, "#report-added li")
    assert len(items) == 100 and items[0].text.startswith("Строка 1 89994000001")
    drv.find_element(By.ID, "report-next").click()
    wait_for(lambda: drv.find_element(By.CSS_SELECTOR, "#report-added li").text.startswith("Строка 102 "),
             what="page 2 of the added lines")
    assert not drv.find_elements(By.ID, "report-rejected")       # one kind at a time
    for lang in ("ru", "en"):
        drv.get(f"{site.url}/lang/{lang}?next=/dialer/c/1/numbers")
        assert screenshots_fit(drv, with_report, f"dialer-numbers-report-{lang}") == {}
        assert screenshots_fit(drv, site.url + "/dialer/c/1/numbers?page=2", f"dialer-numbers-{lang}") == {}
        assert screenshots_fit(drv, site.url + "/dialer/c/1/numbers?edit=89994000001",
                               f"dialer-numbers-edit-{lang}") == {}
    assert drv.find_element(By.CSS_SELECTOR, "h1").text == "Numbers: Campaign 1"
    drv.get(f"{site.url}/lang/ru?next=/")
    assert (shots_dir() / "dialer-numbers-report-ru-390x844.png").stat().st_size > 10_000
