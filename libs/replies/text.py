"""The part of a reply the person wrote: quoted history, forwarded originals and signatures dropped."""

from __future__ import annotations

import re
import unicodedata

_QUOTE_START = re.compile(
    r"^(?:"
    r"on\s.{0,200}\bwrote:?"  # On Mon, Dec 1, 2026 at 10:00 Sam <sam@x> wrote:
    r"|el\s.{0,200}\bescribi[oó]:?"  # El lun, 1 dic 2026, Sam <sam@x> escribió:
    r"|le\s.{0,200}\ba\s+[ée]crit\s*:"
    r"|am\s.{0,200}\bschrieb.{0,80}:"
    r"|-{2,}\s*(?:original message|mensaje original|forwarded message|mensaje reenviado)\s*-{2,}"
    r"|(?:from|de|sent|enviado(?: el)?|to|para|subject|asunto):\s.+@.+"
    r"|(?:from|de):\s.{1,120}"
    r"|_{5,}"
    r")\s*$",
    re.IGNORECASE,
)
_SENT_FROM = re.compile(
    r"^(?:sent from my\s.+|sent from (?:outlook|mail|gmail|yahoo)\b.*|get outlook for\s.+|enviado desde mi\s.+)$",
    re.IGNORECASE,
)
_SIGN_OFF = re.compile(
    r"^(?:best(?:\s+regards|\s+wishes)?|regards|kind regards|warm regards|many thanks|thanks(?:\s+again)?|thank you|"
    r"thx|cheers|sincerely|all the best|talk soon|br|"
    r"saludos(?:\s+cordiales)?|un saludo|un abrazo|atentamente|cordialmente|gracias|muchas gracias|"
    r"quedo atent[oa]|abrazos)\s*[,.!]?\s*$",
    re.IGNORECASE,
)
_SIGNATURE_LINE = re.compile(r"^--\s*$|^—\s*$")
_WRAPPED_WROTE = re.compile(r"^(?:wrote|escribi[oó])\s*:\s*$", re.IGNORECASE)


def fold(text: str) -> str:
    """Lower-case ``text`` with accents removed and typographic quotes made plain: what the rules match on."""
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).replace("\u00a0", " ")


def new_text(body: str, *, limit: int = 4000) -> str:
    """Return what the person wrote: stop at quoted history, a forwarded original or a signature.

    A sign-off line ("Best,", "Saludos,") ends the message once something was written above
    it; "Sent from my iPhone" and the ``-- `` delimiter always do.
    """
    lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        following = lines[index + 1].strip() if index + 1 < len(lines) else ""
        if stripped.startswith(">") or _QUOTE_START.match(stripped) or _SENT_FROM.match(stripped):
            break
        if _SIGNATURE_LINE.match(stripped):
            break
        # "On Mon, Dec 1, 2026 at 10:00 AM Sam <sam@x>" wrapped before "wrote:".
        if re.match(r"^(?:on|el)\s.+", stripped, re.IGNORECASE) and _WRAPPED_WROTE.match(following):
            break
        if _SIGN_OFF.match(stripped) and any(k.strip() for k in kept):
            break
        kept.append(line)
    return "\n".join(kept).strip()[:limit]


__all__ = ["fold", "new_text"]
