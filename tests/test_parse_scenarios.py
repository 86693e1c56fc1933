"""Focused behaviours of parse.py, one scenario per test, named for what they promise."""

from __future__ import annotations

import base64
import email.policy
from email.message import EmailMessage

import pytest

from helpdesk.errors import ParseError
from helpdesk.mail.mimeparts import MAX_MIME_DEPTH, _from_mailparser
from helpdesk.mail.parse import content_hash, decode_bytes, decode_header_value, parse
from tests.helpers import make_mail

HEAD = b"From: Ann <ann@example.org>\nTo: desk@example.com\nSubject: hi\nMessage-ID: <1@x>\n"


def _mail(extra: bytes, body: bytes) -> bytes:
    return HEAD + extra + b"\n" + body


def test_an_html_only_mail_gets_readable_text_and_sanitised_html() -> None:
    mail = parse(
        _mail(
            b"Content-Type: text/html; charset=utf-8\n",
            b"<p>Hello <b>there</b></p><script>alert(1)</script>",
        )
    )
    assert mail.body_text == "Hello there"
    assert mail.body_text_from_html
    assert "<script" not in mail.body_html and "<b>there</b>" in mail.body_html


def test_a_lying_charset_still_decodes() -> None:
    mail = parse(_mail(b"Content-Type: text/plain; charset=utf-8\n", "café".encode("cp1252")))
    assert mail.body_text == "café"
    assert "CharsetMismatch: utf-8" in mail.defects


def test_utf8_with_a_few_broken_bytes_stays_utf8() -> None:
    data = "příliš žluťoučký kůň".encode() + b"\xff"
    assert decode_bytes(data, "utf-8", None).startswith("příliš žluťoučký kůň")


@pytest.mark.parametrize(
    ("charset", "text"),
    [
        ("x-mac-cyrillic", "Привет"),
        ("ks_c_5601-1987", "사진"),
        ("iso-8859-8-i", "שלום"),
        ("gb2312", "中文"),
        ("X-UNKNOWN", "naïve"),
        ("utf-16", "hello"),
    ],
)
def test_unusual_charsets_decode(charset: str, text: str) -> None:
    codec = {
        "ks_c_5601-1987": "cp949",
        "iso-8859-8-i": "iso-8859-8",
        "gb2312": "gb18030",
        "x-mac-cyrillic": "mac_cyrillic",
        "X-UNKNOWN": "utf-8",
    }.get(charset, charset)
    assert decode_bytes(text.encode(codec), charset, None) == text


def test_a_utf16_body_part_decodes() -> None:
    mail = parse(
        _mail(
            b"Content-Type: text/plain; charset=utf-16\nContent-Transfer-Encoding: base64\n",
            base64.b64encode("Grüße".encode("utf-16")),
        )
    )
    assert mail.body_text == "Grüße"


def test_an_encoded_subject_in_a_hebrew_charset_decodes() -> None:
    value = "=?iso-8859-8-i?B?" + base64.b64encode("שלום".encode("iso-8859-8")).decode() + "?="
    assert decode_header_value(value) == "שלום"


def test_a_subject_is_safe_to_reuse_in_an_outgoing_header() -> None:
    mail = parse(HEAD.replace(b"Subject: hi", "Subject: a\u2028b\x1cc".encode()) + b"\nbody")
    reply = EmailMessage()
    reply["Subject"] = "Re: " + mail.subject
    assert b"a b c" in reply.as_bytes()


def test_an_encoded_display_name_with_a_comma_is_one_address() -> None:
    mail = parse(
        b"From: =?utf-8?Q?Doe=2C_J=C3=B6rg?= <j@example.org>\n"
        b"To: =?utf-8?Q?A=2C_B?= <a@example.org>, c@example.org\nSubject: x\n\nbody"
    )
    assert (mail.from_name, mail.from_addr) == ("Doe, Jörg", "j@example.org")
    assert mail.to == ("a@example.org", "c@example.org")


@pytest.mark.parametrize(
    "raw", [b"", b"   \r\n\r\n", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600)]
)
def test_empty_or_binary_data_is_refused_with_a_reason(raw: bytes) -> None:
    with pytest.raises(ParseError, match=r"empty|not an RFC 5322"):
        parse(raw)


def test_prose_without_headers_is_refused() -> None:
    with pytest.raises(ParseError, match="without any mail header"):
        parse(b"One: Here's what I've got.\n\n- a bullet\n")


def test_a_dsn_without_from_parses_with_a_defect() -> None:
    mail = parse(
        b"Content-Type: message/delivery-status\nMIME-Version: 1.0\n\n"
        b"Reporting-MTA: dns; mx.example\n\nFinal-Recipient: rfc822; a@b.c\nAction: failed\n"
    )
    assert "MissingFrom" in mail.defects
    assert mail.attachments[0].filename == "delivery-status.txt"


def test_a_header_block_after_a_leading_blank_line_parses() -> None:
    mail = parse(b"\r\n" + HEAD + b"\nbody")
    assert mail.from_addr == "ann@example.org" and "LeadingBlankLines" in mail.defects


def test_a_bsmtp_envelope_is_unwrapped() -> None:
    raw = (
        b"HELO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"
        + HEAD
        + b"\r\n..dot\r\n.\r\nQUIT\r\n"
    )
    mail = parse(raw)
    assert mail.subject == "hi" and mail.body_text == ".dot" and "BSMTPEnvelope" in mail.defects


def test_a_stray_line_inside_the_header_block_is_dropped() -> None:
    mail = parse(b"Received: by x\ngarbage line\nFrom: a@example.org\nSubject: kept\n\nbody")
    assert mail.subject == "kept" and "InvalidHeaderLineDropped" in mail.defects


def _nested(depth: int) -> bytes:
    body = b"Content-Type: text/plain\n\ndeep text\n"
    for i in range(depth):
        body = b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n%s\n--b%d--\n' % (
            i,
            i,
            body,
            i,
        )
    return HEAD + body


def test_deep_mime_nesting_is_bounded_with_a_defect() -> None:
    mail = parse(_nested(MAX_MIME_DEPTH + 5))
    assert any(d.startswith("MimeNestingTooDeep") for d in mail.defects)


def test_nesting_deeper_than_the_stdlib_stack_keeps_headers_and_body_bytes() -> None:
    mail = parse(_nested(1500))
    assert mail.subject == "hi"
    assert "MimeNestingTooDeep: body kept unparsed" in mail.defects
    assert mail.attachments[0].filename == "unparsed-body.txt"


def test_a_huge_address_header_does_not_exhaust_the_stack() -> None:
    to = b", ".join(b"=?utf-8?Q?n%d?= <u%d@example.org>" % (i, i) for i in range(6000))
    mail = parse(b"From: a@example.org\nTo: " + to + b"\nSubject: big\n\nbody")
    assert len(mail.to) == 6000


def test_a_multipart_with_a_wrong_boundary_keeps_its_text() -> None:
    mail = parse(
        _mail(
            b'Content-Type: multipart/alternative; boundary="declared"\n',
            b"--actual\nContent-Type: text/plain\n\nreal text\n--actual--\n",
        )
    )
    assert mail.body_text == "real text"
    assert "RecoveredBoundary: actual" in mail.defects


def test_an_unquoted_boundary_with_an_equals_sign_is_honoured() -> None:
    mail = parse(
        _mail(
            b"Content-Type: multipart/alternative; boundary=----=_NextPart_0\n",
            b"------=_NextPart_0\nContent-Type: text/plain\n\nhello\n------=_NextPart_0--\n",
        )
    )
    assert mail.body_text == "hello"


def test_a_nested_message_is_kept_as_an_attachment() -> None:
    inner = b"From: b@example.org\nSubject: original\n\nforwarded text\n"
    mail = parse(
        _mail(
            b'Content-Type: multipart/mixed; boundary="m"\n',
            b"--m\nContent-Type: text/plain\n\nsee below\n--m\n"
            b"Content-Type: message/rfc822\n\n" + inner + b"--m--\n",
        )
    )
    assert mail.body_text == "see below"
    (att,) = mail.attachments
    assert att.content_type == "message/rfc822" and parse(att.data).subject == "original"


def test_an_inline_image_keeps_its_content_id_and_cid_reference() -> None:
    png = base64.b64encode(b"\x89PNG fake")
    mail = parse(
        _mail(
            b'Content-Type: multipart/related; boundary="r"\n',
            b'--r\nContent-Type: text/html\n\n<img src="cid:logo@x">\n--r\n'
            b"Content-Type: image/png\nContent-ID: <logo@x>\nContent-Transfer-Encoding: base64\n\n"
            + png
            + b"\n--r--\n",
        )
    )
    (img,) = mail.attachments
    assert img.inline and img.content_id == "logo@x" and img.data == b"\x89PNG fake"
    assert 'src="cid:logo@x"' in mail.body_html


def test_an_rfc2047_attachment_filename_is_decoded() -> None:
    mail = parse(
        _mail(
            b'Content-Type: multipart/mixed; boundary="m"\n',
            b'--m\nContent-Type: image/jpeg; name="=?ks_c_5601-1987?B?u+fB+C5KUEc=?="\n'
            b"Content-Disposition: attachment\n\nx\n--m--\n",
        )
    )
    assert mail.attachments[0].filename == "사진.JPG"


def test_mailparser_binary_payloads_are_decoded_from_base64() -> None:
    item = {
        "payload": base64.b64encode(b"\x00\x01bin").decode(),
        "binary": True,
        "filename": "a.bin",
        "mail_content_type": "application/octet-stream",
        "content-id": "",
        "content-disposition": "attachment",
    }
    att = _from_mailparser(item)
    assert att.data == b"\x00\x01bin" and not att.inline


def test_a_redelivered_copy_has_the_same_content_hash() -> None:
    raw = _mail(b"", b"body\n")
    again = b"Received: from mx by mx2; Mon, 1 Jan 2024 00:00:00 +0000\r\n" + raw.replace(
        b"\n", b"\r\n"
    )
    assert parse(raw).content_hash == parse(again).content_hash


def test_an_undeclared_8bit_header_is_read_in_the_body_charset_first() -> None:
    raw = (b"From: \xf0\xc5\xd4\xd2 <petr@example.ru>\nSubject: \xf0\xd2\xc9\xd7\xc5\xd4\n"
           b"Content-Type: text/plain; charset=koi8-r\n\n\xf0\xd2\xc9\xd7\xc5\xd4\n")
    mail = parse(raw)
    assert (mail.from_name, mail.subject, mail.body_text) == ("Петр", "Привет", "Привет")
    assert "Undeclared8bitHeader: read as koi8-r" in mail.defects


def test_a_raw_utf8_header_is_no_defect() -> None:
    mail = parse("From: Françoise <f@example.fr>\nSubject: ça va\n\nhi\n".encode())
    assert (mail.from_name, mail.subject) == ("Françoise", "ça va")
    assert not [d for d in mail.defects if "8bit" in d or "UTF8" in d]


def test_a_bare_cr_inside_a_header_line_does_not_end_the_head() -> None:
    mail = parse(b"From: a@example.org\r\nSubject: one\rtwo\r\nTo: b@example.org\r\n\r\nbody\r\n")
    assert (mail.subject, mail.to, mail.body_text) == ("one two", ("b@example.org",), "body")
    assert "StrayCarriageReturnInHead" in mail.defects


def test_a_clean_crlf_mail_has_no_stray_carriage_return() -> None:
    raw = make_mail().as_bytes(policy=email.policy.SMTP)
    assert parse(raw).defects == ()
    # an empty field last in the head, and one before it
    for head in (b"Subject: x\r\nX-Empty:", b"X-Empty:\r\nSubject: x", b"Subject:"):
        mail = parse(b"From: a@example.org\r\n" + head + b"\r\n\r\nbody\r\n")
        assert mail.defects == (), head
        assert mail.body_text == "body"


def test_a_stray_carriage_return_ending_the_head_is_still_repaired() -> None:
    mail = parse(b"From: a@example.org\r\nSubject: one\r\r\n\r\nbody\r\n")
    assert (mail.subject, mail.body_text) == ("one", "body")
    assert "StrayCarriageReturnInHead" in mail.defects


def test_a_mail_with_cr_line_ends_only_still_parses() -> None:
    mail = parse(b"From: a@example.org\rSubject: old mac\r\rbody\r")
    assert (mail.subject, mail.body_text) == ("old mac", "body")
    assert "StrayCarriageReturnInHead" not in mail.defects


def test_a_header_less_mail_redelivered_with_trace_fields_has_the_same_content_hash() -> None:
    raw = b"disk web1 is 91% full\n"
    again = b"Received: from mx by mx2; Mon, 1 Jan 2024\r\n\tid 42\r\nReturn-Path: <>\r\n" + raw
    assert content_hash(raw) == content_hash(again)
    assert content_hash(raw) != content_hash(b"disk db2 is 99% full\n")
