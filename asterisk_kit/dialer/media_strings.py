"""Messages of the autodialer's media building blocks (sounds, text-to-speech, list files), ru and en.

The campaign pages register them with `web.strings(STRINGS)`; the CLI and logs use `MediaError`'s
English text. Kept in one table of its own so it merges without touching the pages' strings.
"""
from __future__ import annotations

from typing import Dict

STRINGS: Dict[str, Dict[str, str]] = {
    "ru": {
        "sound.empty": "Файл пустой.",
        "sound.too_big": "Файл больше {limit_mb} МБ.",
        "sound.not_audio": "Это не звуковой файл (или формат не поддерживается). Подойдут mp3, wav, ogg, m4a.",
        "sound.too_long": "Запись длиннее {limit} с.",
        "sound.silent": "В файле нет звука.",
        "sound.timeout": "Преобразование записи заняло больше {limit} с и прервано.",
        "sound.no_tool": "На сервере не установлен {tool}: запись нельзя преобразовать.",
        "sound.failed": "Не удалось преобразовать запись ({detail}).",
        "sound.unknown": "Запись не найдена.",
        "tts.empty": "Введите текст сообщения.",
        "tts.too_long": "Текст длиннее {limit} символов.",
        "tts.voice": "Голос «{voice}» недоступен.",
        "list.not_xlsx": "Это не файл Excel .xlsx (старый .xls сохраните в Excel как .xlsx).",
        "list.encrypted": "Файл защищён паролем. Сохраните его в Excel без пароля.",
        "list.empty": "В первом листе нет данных.",
        "list.too_big": "Файл слишком большой (распакованный больше {limit_mb} МБ).",
        "list.too_many_rows": "Строк больше {limit}.",
        "list.too_big_row": "В строке больше {limit} ячеек.",
        "list.encoding": "Не удалось прочитать текст: ни UTF-8, ни Windows-1251.",
    },
    "en": {
        "sound.empty": "The file is empty.",
        "sound.too_big": "The file is larger than {limit_mb} MB.",
        "sound.not_audio": "This is not an audio file (or its format is not supported). Use mp3, wav, ogg or m4a.",
        "sound.too_long": "The recording is longer than {limit} s.",
        "sound.silent": "The file contains no sound.",
        "sound.timeout": "Converting the recording took longer than {limit} s and was stopped.",
        "sound.no_tool": "{tool} is not installed on the server: the recording cannot be converted.",
        "sound.failed": "The recording could not be converted ({detail}).",
        "sound.unknown": "No such recording.",
        "tts.empty": "Enter the message text.",
        "tts.too_long": "The text is longer than {limit} characters.",
        "tts.voice": "Voice \u201c{voice}\u201d is not available.",
        "list.not_xlsx": "This is not an Excel .xlsx file (save an old .xls as .xlsx in Excel).",
        "list.encrypted": "The file is password-protected. Save it in Excel without a password.",
        "list.empty": "The first sheet holds no data.",
        "list.too_big": "The file is too large (more than {limit_mb} MB unpacked).",
        "list.too_many_rows": "More than {limit} rows.",
        "list.too_big_row": "A row has more than {limit} cells.",
        "list.encoding": "Cannot read the text: neither UTF-8 nor Windows-1251.",
    },
}


class MediaError(ValueError):
    """Bad input for a media building block: a message key (+ params) for the page, English for logs."""

    def __init__(self, key: str, **params):
        self.key = key
        self.params = params
        super().__init__(self.text("en"))

    def text(self, lang: str = "en") -> str:
        table = STRINGS.get(lang) or STRINGS["en"]
        return table.get(self.key, self.key).format(**self.params)
