"""The words of invoices and invoice emails in the client's language (gettext catalogs).

Catalogs live in `locale/<language>/LC_MESSAGES/messages.po` (the source, edited by people) and
`messages.mo` (compiled, committed so that the deployed package has them; a unit test checks
that each .mo matches its .po). The message ids are the English texts, so English needs no
catalog. After editing a .po file, compile it:

    .venv/bin/pybabel compile -d shared/invoicing/locale -D messages

A client's locale picks the catalog of its language (de_DE, de_AT and de_CH all read German);
a language without a catalog reads English. Dates, numbers and money follow the full locale
through Babel, independently of the catalog.
"""
from __future__ import annotations

import gettext
import os
from functools import lru_cache

LOCALE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "locale")
DOMAIN = "messages"

#: Languages with a catalog; every other language reads the English message ids.
LANGUAGES = ("de", "es", "fr", "nl")


@lru_cache(maxsize=16)
def translations(language: str) -> gettext.NullTranslations:
    """The catalog of a language code ("de"), or English (the message ids) when there is none."""
    if language not in LANGUAGES:
        return gettext.NullTranslations()
    path = os.path.join(LOCALE_DIR, language, "LC_MESSAGES", f"{DOMAIN}.mo")
    with open(path, "rb") as handle:  # a missing catalog of a listed language is a packaging bug
        return gettext.GNUTranslations(handle)
