"""The messages page `/dialer/sounds`: upload a recording, text-to-speech, listen, rename, delete.

Uploads are converted by sounds.SoundStore (ffmpeg, 8 kHz mono WAV named by a hash of the upload),
spoken texts by tts.Speech (espeak-ng, cached by a hash of voice, rate and text); the titles staff
give are rows of `dialer_sounds` (soundlist.py). The preview `/dialer/sounds/<id>.wav` is the very
file Asterisk plays. A message a campaign, a run in progress or the config still uses is not deleted;
the page says who uses it. Every form answers with a redirect (post/redirect/get).
"""
from __future__ import annotations

import shutil
from pathlib import PurePath
from typing import Dict, List

import bottle

from . import soundlist
from .media_strings import STRINGS as MEDIA_STRINGS
from .media_strings import MediaError
from .sounds import SoundStore
from .tts import ENGINE, Speech

PATH = "/dialer/sounds"
_ID = "<sid:re:[0-9a-f]{32}>"

STRINGS = {
    "ru": {
        "snd.title": "Сообщения",
        "snd.intro": "Записи, которые кампании проигрывают абонентам. Загруженный файл преобразуется в формат "
                     "АТС (8 кГц, моно); здесь слышно ровно то, что услышит абонент.",
        "snd.list": "Сообщения",
        "snd.empty": "Сообщений пока нет.",
        "snd.kind.upload": "запись",
        "snd.kind.tts": "синтез речи",
        "snd.meta": "{kind}, {seconds} с · {user} · {when}",
        "snd.used": "Используется: {who}",
        "snd.user.campaign": "кампания «{name}»",
        "snd.user.run": "запуск #{id}",
        "snd.user.config": "настройки по умолчанию ([dialer] sound / ivr_prompt)",
        "snd.upload": "Загрузить запись",
        "snd.upload.hint": "mp3, wav, ogg или m4a, до {mb} МБ и {seconds} с.",
        "snd.name": "Название",
        "snd.name.hint": "пусто — имя файла",
        "snd.file": "Файл",
        "snd.upload.submit": "Загрузить",
        "snd.uploaded": "Сообщение «{title}» добавлено.",
        "snd.exists": "Эта запись уже есть в списке: «{title}».",
        "snd.nofile": "Выберите файл с записью.",
        "snd.title.long": "Название длиннее {n} символов.",
        "snd.title.empty": "Введите название.",
        "snd.tts": "Синтез речи",
        "snd.tts.hint": "Текст прочитает голос espeak-ng ({voice}), до {n} символов. Звучит как робот; "
                        "для важных сообщений лучше живая запись.",
        "snd.tts.text": "Текст сообщения",
        "snd.tts.submit": "Озвучить",
        "snd.tts.missing": "Синтез речи недоступен: на сервере не установлен espeak-ng "
                           "(Debian: apt-get install espeak-ng). Загрузите запись.",
        "snd.rename": "Переименовать",
        "snd.renamed": "Название сохранено: «{title}».",
        "snd.delete": "Удалить",
        "snd.delete.confirm": "Удалить сообщение «{title}»?",
        "snd.deleted": "Сообщение «{title}» удалено.",
        "snd.in_use": "«{title}» нельзя удалить: его использует {who}.",
        "snd.missing": "Сообщение не найдено (уже удалено?).",
    },
    "en": {
        "snd.title": "Messages",
        "snd.intro": "Recordings the campaigns play to the callees. An upload is converted to what the PBX plays "
                     "(8 kHz, mono): what you hear here is exactly what the callee hears.",
        "snd.list": "Messages",
        "snd.empty": "No messages yet.",
        "snd.kind.upload": "recording",
        "snd.kind.tts": "text to speech",
        "snd.meta": "{kind}, {seconds} s · {user} · {when}",
        "snd.used": "Used by: {who}",
        "snd.user.campaign": "campaign “{name}”",
        "snd.user.run": "run #{id}",
        "snd.user.config": "the defaults ([dialer] sound / ivr_prompt)",
        "snd.upload": "Upload a recording",
        "snd.upload.hint": "mp3, wav, ogg or m4a, up to {mb} MB and {seconds} s.",
        "snd.name": "Title",
        "snd.name.hint": "empty: the file's name",
        "snd.file": "File",
        "snd.upload.submit": "Upload",
        "snd.uploaded": "Message “{title}” added.",
        "snd.exists": "This recording is already on the list: “{title}”.",
        "snd.nofile": "Choose a file with the recording.",
        "snd.title.long": "The title is longer than {n} characters.",
        "snd.title.empty": "Enter a title.",
        "snd.tts": "Text to speech",
        "snd.tts.hint": "The text is read by the espeak-ng voice ({voice}), up to {n} characters. It sounds "
                        "robotic; a real recording is better for important messages.",
        "snd.tts.text": "Message text",
        "snd.tts.submit": "Speak",
        "snd.tts.missing": "Text to speech is not available: espeak-ng is not installed on the server "
                           "(Debian: apt-get install espeak-ng). Upload a recording instead.",
        "snd.rename": "Rename",
        "snd.renamed": "Title saved: “{title}”.",
        "snd.delete": "Delete",
        "snd.delete.confirm": "Delete the message “{title}”?",
        "snd.deleted": "Message “{title}” deleted.",
        "snd.in_use": "“{title}” cannot be deleted: {who} uses it.",
        "snd.missing": "No such message (deleted already?).",
    },
}


def clean_title(raw: str) -> str:
    return " ".join((raw or "").split())


def register(web) -> None:
    app, req = web.app, bottle.request
    web.strings(MEDIA_STRINGS)
    web.strings(STRINGS)
    conn = web.db
    soundlist.ensure(conn())
    sounds = SoundStore.from_config(web.cfg)
    speech = Speech.from_config(web.cfg, sounds)
    d = web.cfg["dialer"]

    def has_tts() -> bool:
        return shutil.which(ENGINE) is not None

    def who(users: List[str]) -> str:
        parts = []
        for u in users:
            kind, _, rest = u.partition(":")
            if kind == "campaign":
                _id, _, name = rest.partition(":")
                parts.append(web.t("snd.user.campaign", name=name))
            elif kind == "run":
                parts.append(web.t("snd.user.run", id=rest))
            else:
                parts.append(web.t("snd.user.config"))
        return ", ".join(parts)

    def check_title(raw: str, field: str, errors: Dict[str, str]) -> str:
        title = clean_title(raw)
        if len(title) > soundlist.TITLE_MAX:
            errors[field] = web.t("snd.title.long", n=soundlist.TITLE_MAX)
        return title

    @app.get(PATH)
    @web.login_required
    def sounds_page():
        import datetime as dt

        from . import schedule
        f = web.flashed()
        c = conn()
        zone = schedule.tz(web.cfg)
        items = []
        for r in soundlist.all_sounds(c):
            name = str(sounds.path(r["id"]).with_suffix(""))
            items.append({"id": r["id"], "title": r["title"], "kind": r["kind"], "text": r["text"],
                          "meta": web.t("snd.meta", kind=web.t(f"snd.kind.{r['kind']}"), seconds=f"{r['seconds']:.1f}",
                                        user=r["by_user"] or "—",
                                        when=dt.datetime.fromtimestamp(r["created"], zone).strftime("%Y-%m-%d %H:%M")),
                          "used": who(soundlist.users_of(c, web.cfg, name))})
        return web.render("dialer_sounds.html", dnav="sounds", items=items, tts=has_tts(),
                          max_mb=d["sound_max_mb"], max_seconds=d["sound_max_seconds"], voice=d["tts_voice"],
                          tts_max=d["tts_max_chars"], errors=f["errors"], form=f["form"], notice=f["notice"])

    def added(sound, title: str, kind: str, text: str = "") -> None:
        c = conn()
        if soundlist.add(c, sound.id, title, kind, sound.seconds, web.user() or "", text):
            web.log.info("dialer: %s added message %s (%s, %.1f s)", web.user(), sound.id, kind, sound.seconds)
            web.redirect_with(PATH, notice=web.t("snd.uploaded", title=title), anchor=f"snd-{sound.id}")
        row = soundlist.get(c, sound.id)
        web.redirect_with(PATH, notice=web.t("snd.exists", title=row["title"] if row else title),
                          anchor=f"snd-{sound.id}")

    @app.post(PATH + "/upload")
    @web.login_required
    def upload():
        errors: Dict[str, str] = {}
        form = {"title": req.forms.getunicode("title") or ""}
        title = check_title(form["title"], "snd-title", errors)
        f = req.files.get("file")
        if not isinstance(f, bottle.FileUpload) or not f.raw_filename:
            errors["snd-file"] = web.t("snd.nofile")
        if errors:
            web.redirect_with(PATH, errors=errors, form=form, anchor="form-errors")
        try:
            sound = sounds.add_upload(f.file)
        except MediaError as e:
            web.log.info("dialer: %s uploaded a message that was refused: %s", web.user(), e)
            web.redirect_with(PATH, errors={"snd-file": web.t(e.key, **e.params)}, form=form, anchor="form-errors")
        # The user's file name is only a default title (never a path: the file is named by its hash).
        title = title or clean_title(PurePath(f.raw_filename.replace("\\", "/")).stem)[:soundlist.TITLE_MAX] or sound.id
        added(sound, title, "upload")

    @app.post(PATH + "/tts")
    @web.login_required
    def tts():
        errors: Dict[str, str] = {}
        form = {"tts_title": req.forms.getunicode("title") or "", "tts_text": req.forms.getunicode("text") or ""}
        title = check_title(form["tts_title"], "tts-title", errors)
        if errors:
            web.redirect_with(PATH, errors=errors, form=form, anchor="form-errors")
        try:
            sound = speech.say(form["tts_text"])
        except MediaError as e:
            web.log.info("dialer: %s asked for speech that was refused: %s", web.user(), e)
            web.redirect_with(PATH, errors={"tts-text": web.t(e.key, **e.params)}, form=form, anchor="form-errors")
        text = Speech.normalise(form["tts_text"])
        added(sound, title or (text[:60] + ("…" if len(text) > 60 else "")), "tts", text)

    @app.post(PATH + f"/{_ID}/rename")
    @web.login_required
    def rename(sid):
        errors: Dict[str, str] = {}
        title = check_title(req.forms.getunicode("title") or "", f"title-{sid}", errors)
        if not title and not errors:
            errors[f"title-{sid}"] = web.t("snd.title.empty")
        if errors:
            web.redirect_with(PATH, errors=errors, anchor="form-errors")
        if not soundlist.rename(conn(), sid, title):
            web.redirect_with(PATH, notice=web.t("snd.missing"))
        web.redirect_with(PATH, notice=web.t("snd.renamed", title=title), anchor=f"snd-{sid}")

    @app.post(PATH + f"/{_ID}/delete")
    @web.login_required
    def delete(sid):
        c = conn()
        row = soundlist.get(c, sid)
        if row is None:
            web.redirect_with(PATH, notice=web.t("snd.missing"))
        users = soundlist.users_of(c, web.cfg, str(sounds.path(sid).with_suffix("")))
        if users:
            web.redirect_with(PATH, errors={f"del-{sid}": web.t("snd.in_use", title=row["title"], who=who(users))},
                              anchor="form-errors")
        soundlist.remove(c, sid)
        sounds.delete(sid)
        web.log.info("dialer: %s deleted message %s (%s)", web.user(), sid, row["title"])
        web.redirect_with(PATH, notice=web.t("snd.deleted", title=row["title"]))

    @app.get(PATH + f"/{_ID}.wav")
    @web.login_required
    def preview(sid):
        if soundlist.get(conn(), sid) is None or not sounds.exists(sid):
            raise bottle.HTTPError(404)
        # bottle.static_file answers Range requests (seeking in <audio>) and conditional GETs.
        return bottle.static_file(f"{sid}.wav", root=str(sounds.folder), mimetype="audio/wav")
