"""Mail content as the desk hands it to a browser: a message's HTML sanitised for the
"show formatted" view, and attachments as downloads. Both are hostile input.

The HTML view is its own document (never part of the ticket page), shown in an
`<iframe sandbox>` and served under a CSP that allows no script, no fetch and no
framing by other sites; nh3 (a strict allow-list) runs first, the CSP catches whatever
it might miss. Remote images are replaced by a placeholder, so opening a mail tells
its sender nothing, until the agent asks for them (`images=True`: https only).

Attachments are always downloads (Content-Disposition: attachment), with nosniff and
a Content-Type from an allow-list: HTML, SVG, XML or script types become
application/octet-stream, so nothing a customer attaches can run as our origin.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

import nh3
from starlette.responses import FileResponse, HTMLResponse, Response, StreamingResponse

from helpdesk.store.blobs import DbBlob

TAGS = {
    "a", "abbr", "b", "big", "blockquote", "br", "caption", "center", "cite", "code",
    "col", "colgroup", "dd", "del", "div", "dl", "dt", "em", "font", "h1", "h2", "h3",
    "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "ol", "p", "pre", "q", "s",
    "small", "span", "strike", "strong", "sub", "sup", "table", "tbody", "td", "tfoot",
    "th", "thead", "tr", "tt", "u", "ul",
}
_CELL = {"align", "valign", "colspan", "rowspan", "width", "height", "bgcolor"}
ATTRIBUTES = {
    "*": {"dir", "lang", "title", "align", "style"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "font": {"color", "size", "face"},
    "table": {"width", "border", "cellpadding", "cellspacing", "bgcolor"},
    "td": _CELL, "th": _CELL, "tr": {"valign", "bgcolor"},
    "col": {"span", "width"}, "colgroup": {"span", "width"},
    "ol": {"start", "type"}, "li": {"value"},
}
# style properties that cannot name a URL (no background, list-style, border-image,
# content, cursor, mask, filter): CSS `url()` would be a way to call home
STYLE_PROPERTIES = {
    "color", "background-color", "font", "font-family", "font-size", "font-style",
    "font-weight", "font-variant", "text-align", "text-decoration", "text-indent",
    "text-transform", "line-height", "letter-spacing", "word-spacing", "white-space",
    "vertical-align", "width", "height", "max-width", "min-width", "margin",
    "margin-top", "margin-right", "margin-bottom", "margin-left", "padding",
    "padding-top", "padding-right", "padding-bottom", "padding-left", "border",
    "border-top", "border-right", "border-bottom", "border-left", "border-color",
    "border-style", "border-width", "border-collapse", "border-spacing", "direction",
}
_DATA_IMAGE = re.compile(r"data:image/(png|gif|jpeg|webp);base64,[A-Za-z0-9+/=\s]*\Z", re.I)
# what a blocked image shows instead (an image cannot run script, even an SVG one)
PLACEHOLDER = "data:image/svg+xml," + quote(
    '<svg xmlns="http://www.w3.org/2000/svg" width="160" height="24">'
    '<rect width="160" height="24" fill="#eee" stroke="#999"/>'
    '<text x="8" y="16" font-family="sans-serif" font-size="12" fill="#555">'
    'remote image blocked</text></svg>', safe="")

_DOCUMENT = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">
<style>body{{font-family:sans-serif;margin:.5rem;overflow-wrap:anywhere}}
img{{max-width:100%;height:auto}}</style></head>
<body>{body}</body></html>"""

_CSP = ("default-src 'none'; img-src {img}; style-src 'unsafe-inline'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'self'; "
        "sandbox allow-popups allow-popups-to-escape-sandbox")


def _attribute_filter(images: bool):  # type: ignore[no-untyped-def]
    def keep(tag: str, attribute: str, value: str) -> str | None:
        lowered = value.strip().lower()
        if attribute == "href" and not lowered.startswith(("http:", "https:", "mailto:")):
            return None
        if tag == "img" and attribute == "src":
            if _DATA_IMAGE.match(value.strip()):
                return value
            if images and lowered.startswith("https:"):
                return value
            return PLACEHOLDER  # remote (or cid:, or anything else): not fetched
        return value
    return keep


@lru_cache(maxsize=2)
def cleaner(images: bool) -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=TAGS, attributes=ATTRIBUTES, clean_content_tags={"script", "style"},
        url_schemes={"http", "https", "mailto", "data"}, url_relative="deny",
        link_rel="noopener noreferrer", set_tag_attribute_values={"a": {"target": "_blank"}},
        filter_style_properties=STYLE_PROPERTIES, attribute_filter=_attribute_filter(images),
        strip_comments=True)


def sanitise(html: str, images: bool = False) -> str:
    return cleaner(images).clean(html)


def html_document(html: str, images: bool = False) -> HTMLResponse:
    """The sanitised mail as a page of its own, under the strictest CSP we can give it."""
    body = sanitise(html, images)
    return HTMLResponse(_DOCUMENT.format(body=body), headers={
        "Content-Security-Policy": _CSP.format(img="data: https:" if images else "data:"),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "SAMEORIGIN",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    })


# -- attachments ----------------------------------------------------------------------

# content types a browser shows as what they are and never runs; everything else
# (text/html, image/svg+xml, anything with xml or script in it) is a plain download
_SAFE_TYPES = {
    "text/plain", "text/csv", "application/pdf", "application/zip", "application/gzip",
    "application/msword", "application/rtf", "image/png", "image/jpeg", "image/gif",
    "image/webp", "image/bmp", "image/tiff", "audio/mpeg", "audio/ogg", "audio/wav",
    "video/mp4", "video/webm", "video/ogg",
}
_SAFE_PREFIXES = ("application/vnd.openxmlformats-officedocument.",
                  "application/vnd.oasis.opendocument.", "application/vnd.ms-")
OCTET = "application/octet-stream"


def safe_content_type(declared: str) -> str:
    kind = declared.split(";", 1)[0].strip().lower()
    if "xml" in kind or "script" in kind or "html" in kind or "svg" in kind:
        return OCTET
    if kind in _SAFE_TYPES or kind.startswith(_SAFE_PREFIXES):
        return kind
    return OCTET


_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f\"\\/:*?<>|]+")


def safe_filename(name: str) -> str:
    """A name a browser may save under: no directories, controls or quotes, not hidden."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE_NAME.sub("_", base).strip(" .")
    return cleaned[:200] or "attachment"


_DOWNLOAD_HEADERS = {"X-Content-Type-Options": "nosniff",
                     "Content-Security-Policy": "default-src 'none'; sandbox",
                     "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


def download(source: Path | DbBlob, filename: str, content_type: str) -> Response:
    """A stored file, or a blob in the database streamed chunk by chunk, as a download
    (starlette writes `filename*=` for any name that needs it; the same rule for both)."""
    name = safe_filename(filename)
    if isinstance(source, Path):
        return FileResponse(source, media_type=safe_content_type(content_type), filename=name,
                            content_disposition_type="attachment", headers=_DOWNLOAD_HEADERS)
    quoted = quote(name)
    disposition = (f"attachment; filename*=utf-8''{quoted}" if quoted != name
                   else f'attachment; filename="{name}"')
    # a sync iterator: starlette reads it in its thread pool, one chunk query at a time
    return StreamingResponse(iter(source), media_type=safe_content_type(content_type),
                             headers={**_DOWNLOAD_HEADERS, "Content-Disposition": disposition,
                                      "Content-Length": str(source.size)})
