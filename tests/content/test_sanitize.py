"""Rich text is sanitised on save with an allow-list: a set of XSS payloads is neutralised."""

from __future__ import annotations

import re

import pytest

from apps.content import services
from apps.content.exceptions import ContentError
from apps.content.sanitize import sanitize_html

from .conftest import make_article

LOCAL_IMG = "/info/images/0b7c6f7e-8a7e-4f7e-9b7e-1e7e7e7e7e7e.png"

# OWASP XSS filter evasion cheat sheet and mutation-XSS classics.
PAYLOADS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    "<IMG SRC=\"javascript:alert('XSS');\">",
    '<IMG SRC="jav&#x09;ascript:alert(1);">',
    "<img src=`javascript:alert(1)`>",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<a href="&#106;avascript:alert(1)">x</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    '<a href="vbscript:msgbox(1)">x</a>',
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    "<body onload=alert(1)>",
    '<iframe src="javascript:alert(1)"></iframe>',
    '<object data="javascript:alert(1)"></object>',
    '<embed src="javascript:alert(1)">',
    '<div style="background:url(javascript:alert(1))">x</div>',
    '<p style="width: expression(alert(1))">x</p>',
    "<style>@import 'http://evil.example/x.css';</style>",
    '<link rel="stylesheet" href="http://evil.example/x.css">',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<form action="javascript:alert(1)"><input type=submit></form>',
    '<input autofocus onfocus="alert(1)">',
    '<details open ontoggle="alert(1)">',
    '<video><source onerror="alert(1)"></video>',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    '<a href="https://ok.example" onmouseover="alert(1)">x</a>',
    '<p onclick="alert(1)">x</p>',
    "<!--<img src=x onerror=alert(1)>-->",
    '<base href="javascript:alert(1)//">',
    '<img src="https://tracker.example/pixel.gif" width="1" height="1" alt="">',
    '<img srcset="https://tracker.example/p.gif 1x" alt="p">',
    '<a href="//evil.example/">protocol-relative</a>',
    f'<img src="{LOCAL_IMG}" alt="ok" onload="alert(1)">',
    "<template><script>alert(1)</script></template>",
    '<p><a href="https://ok.example" ping="https://tracker.example/">x</a></p>',
]

DANGEROUS = re.compile(
    r"<\s*(script|style|iframe|object|embed|svg|math|form|input|link|meta|base|body|template|video)"
    r"|\son[a-z]+\s*=|javascript:|vbscript:|data:|expression\(|style=|srcset|ping=|//evil"
    r"|tracker\.example",
    re.IGNORECASE,
)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payload_is_neutralised(payload):
    cleaned = sanitize_html(payload)
    assert not DANGEROUS.search(cleaned), cleaned
    assert sanitize_html(cleaned) == cleaned  # idempotent


def test_allowed_markup_survives():
    html = (
        "<h2>参与条件</h2><p>在<strong>郑州</strong>消费，取得<em>数电普票</em>。</p>"
        "<ul><li>零售</li><li>餐饮</li></ul>"
        '<p><a href="https://www.chinatax.gov.cn/">国家税务总局</a></p>'
        f'<img src="{LOCAL_IMG}" alt="发票样例" width="600" height="400">'
        '<table><thead><tr><th scope="col">档位</th></tr></thead>'
        "<tbody><tr><td>800元</td></tr></tbody></table>"
    )
    cleaned = sanitize_html(html)
    for piece in [
        "<h2>参与条件</h2>",
        "<strong>郑州</strong>",
        "<li>餐饮</li>",
        'href="https://www.chinatax.gov.cn/"',
        'rel="noopener noreferrer nofollow"',
        f'src="{LOCAL_IMG}"',
        'alt="发票样例"',
        '<th scope="col">',
    ]:
        assert piece in cleaned, piece


def test_headings_start_below_the_page_title():
    assert sanitize_html("<h1>标题</h1><h6>小</h6>") == "<h2>标题</h2><h4>小</h4>"


def test_external_images_are_removed_whole():
    cleaned = sanitize_html('<p>a<img src="http://tracker.example/p.gif" alt="x">b</p>')
    assert cleaned == "<p>ab</p>"


@pytest.mark.django_db
def test_text_is_sanitised_when_saved(writer):
    body = "<p>正文</p>" + "".join(PAYLOADS)
    article = make_article(writer, body=body)
    article.refresh_from_db()
    assert "<p>正文</p>" in article.body
    assert not DANGEROUS.search(article.body)
    assert not DANGEROUS.search(article.title)


@pytest.mark.django_db
def test_images_need_alt_text(writer):
    with pytest.raises(ContentError) as exc:
        make_article(writer, body=f'<p>x</p><img src="{LOCAL_IMG}">')
    assert exc.value.code == "article.image_alt_missing"


@pytest.mark.django_db
def test_edits_are_sanitised_too(writer):
    article = make_article(writer)
    services.article_update(article=article, actor=writer, body='<p onclick="x()">新</p>')
    article.refresh_from_db()
    assert article.body == "<p>新</p>"
