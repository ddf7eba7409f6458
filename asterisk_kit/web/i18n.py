"""Page strings in Russian (the staff's language, default) and English.

The core's strings are here; each capability adds its own with `WebKit.strings()`. A key missing in
the chosen language falls back to the other one, then to the key itself (visible, so it gets fixed).
"""
from __future__ import annotations

from typing import Dict

LANGUAGES = ("ru", "en")

STRINGS: Dict[str, Dict[str, str]] = {
    "ru": {
        "app.title": "asterisk-kit",
        "nav.home": "Главная",
        "nav.logout": "Выйти",
        "lang.switch": "English",
        "login.title": "Вход",
        "login.user": "Пользователь",
        "login.password": "Пароль",
        "login.submit": "Войти",
        "login.failed": "Неверное имя пользователя или пароль.",
        "login.locked": "Слишком много неудачных попыток. Попробуйте снова через {minutes} мин.",
        "login.expired": "Сеанс истёк, войдите снова.",
        "form.errors": "Форма не сохранена: исправьте отмеченное.",
        "dnav.campaigns": "Кампании", "dnav.suppressed": "Не звонить", "dnav.sounds": "Сообщения",
        "dnav.tokens": "API-ключи",
        "login.ended": "Сеанс завершён (истёк, сменён пароль или выполнен выход). Войдите снова — "
                       "вы вернётесь на ту же страницу, введённые данные будут восстановлены.",
        "login.busy": "Сервер занят проверкой паролей. Повторите через несколько секунд.",
        "logout.done": "Вы вышли из системы.",
        "home.title": "Главная",
        "home.hello": "Вы вошли как {user}.",
        "home.pages": "Разделы",
        "home.none": "Ни один раздел не включён в конфигурации.",
        "error.csrf": "Форма устарела или отправлена не с этой страницы. Обновите страницу и повторите.",
        "error.400": "Неверный запрос: форма повреждена или в неверной кодировке.",
        "error.403": "Доступ запрещён.",
        "error.404": "Страница не найдена.",
        "error.405": "Метод не поддерживается.",
        "error.500": "Внутренняя ошибка. Подробности в журнале.",
        "error.back": "На главную",
    },
    "en": {
        "app.title": "asterisk-kit",
        "nav.home": "Home",
        "nav.logout": "Log out",
        "lang.switch": "Русский",
        "login.title": "Log in",
        "login.user": "User",
        "login.password": "Password",
        "login.submit": "Log in",
        "login.failed": "Wrong user name or password.",
        "login.locked": "Too many failed attempts. Try again in {minutes} min.",
        "login.expired": "Your session has expired, please log in again.",
        "form.errors": "The form was not saved: correct what is marked.",
        "dnav.campaigns": "Campaigns", "dnav.suppressed": "Do not call", "dnav.sounds": "Messages",
        "dnav.tokens": "API tokens",
        "login.ended": "Your session has ended (expired, password changed or logged out). Log in again: "
                       "you will come back to the same page with what you typed.",
        "login.busy": "The server is busy checking passwords. Try again in a few seconds.",
        "logout.done": "You have logged out.",
        "home.title": "Home",
        "home.hello": "Logged in as {user}.",
        "home.pages": "Pages",
        "home.none": "No page is enabled in the configuration.",
        "error.csrf": "The form is stale or was not sent from this site. Reload the page and try again.",
        "error.400": "Bad request: the form is malformed or not in UTF-8.",
        "error.403": "Forbidden.",
        "error.404": "Page not found.",
        "error.405": "Method not allowed.",
        "error.500": "Internal error. See the log for details.",
        "error.back": "Home",
    },
}


def add(strings: Dict[str, Dict[str, str]]) -> None:
    for lang, table in strings.items():
        if lang not in STRINGS:
            raise ValueError(f"unsupported language {lang!r}")
        STRINGS[lang].update(table)


def translate(lang: str, key: str, **params) -> str:
    other = "en" if lang == "ru" else "ru"
    text = STRINGS.get(lang, {}).get(key) or STRINGS[other].get(key) or key
    return text.format(**params) if params else text
