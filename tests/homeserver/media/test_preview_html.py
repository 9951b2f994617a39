"""OpenGraph from HTML (homeserver/media/preview/html.py) gives what Synapse's
preview_html gives, page by page, on pages written to exercise each rule."""

from __future__ import annotations

from twisted.trial import unittest

from homeserver.media.preview.html import charset_of, open_graph_of, summarize_paragraphs

try:
    from synapse.media.preview_html import decode_body, parse_html_to_open_graph
except ImportError:  # matrix-synapse[url-preview] is a test extra
    decode_body = None

LONG = b" ".join(b"word%d" % i for i in range(400))

PAGES = [
    # OpenGraph, article and profile tags, Twitter cards for what they lack
    b"""<html><head><title>T</title><meta property="og:title" content="OG title"><meta property="article:author" content="Ann">
    <meta property="profile:username" content="ann"><meta name="twitter:title" content="tw"><meta name="twitter:card" content="summary">
    <meta name="twitter:creator" content="@c"><meta name="twitter:site" content="@s"><meta name="twitter:image" content="/tw.png">
    <meta property="og:description" content="  Spaced   out
    description  "></head><body>text</body></html>""",
    # no OpenGraph at all: title, meta description, biggest image
    b"""<HTML><HEAD><TITLE> Upper case </TITLE><META NAME="Description" CONTENT="desc"></HEAD>
    <BODY><IMG SRC="/small.png" WIDTH="9" HEIGHT="300"><img src="/mid.png" width="100" height="100"><img src="/big.png" width="200.5" height="150">
    <img src="/nosize.png"></BODY></HTML>""",
    # headings, the first image when none is sized, text summary skipping nav/script/style/aria menus
    b"""<html><body><header>Site header</header><h2></h2><h3>Third level</h3><div role="menubar">Menu</div>
    <p>First &amp; foremost.</p><!-- a comment --><script>var s = "<p>not text</p>";</script><style>p { color: red }</style>
    <p>Second paragraph<br>with a break.</p><img src="only.png"><footer>Footer</footer></body></html>""",
    # favicon as the last resort, long text cut at a word
    b"<html><head><link rel=\"shortcut icon\" href=\"/favicon.ico\"></head><body><p>" + LONG + b"</p></body></html>",
    b'<html><head><link rel="icon" href="/i.ico"><link rel="apple-touch-icon" href="/a.png"></head><body>x</body></html>',
    # microdata image, an empty title, unclosed tags
    b"""<html><head><meta itemprop="primaryImageOfPage" content="/micro.jpg"><title></title></head>
    <body><div><p>Unclosed paragraph<div>nested <b>bold <i>italic</div> after</body>""",
    # more than 50 og: tags: ignored altogether
    b"<html><head>" + b"".join(b'<meta property="og:k%d" content="v">' % i for i in range(60)) + b"<title>Many</title></head></html>",
    # entities and a charset
    b"""<html><head><meta charset="iso-8859-1"><title>Caf\xe9 &eacute;t&#233; &lt;b&gt;</title></head><body>na\xefve</body></html>""",
    # blank content attributes are skipped
    b"""<html><head><meta property="og:title" content=""><meta property="og:image" content=""><title>Real</title></head></html>""",
    # self-closing and void elements, a title with markup inside
    b"""<html><head><title>A <em>marked</em> title</title><meta property="og:site_name" content="S"/></head>
    <body><h1>Heading <span>part</span></h1><h2>Plain h2</h2><p>Body<br/>text</p></body></html>""",
    b"<p>Just a paragraph, no html element.</p>",
    b"<html><body>   </body></html>",
]


class OpenGraphTest(unittest.TestCase):
    if decode_body is None:
        skip = "matrix-synapse[url-preview] is not installed"

    def test_same_as_synapse(self) -> None:
        for page in PAGES:
            soup = decode_body(page, "http://example.org/")
            theirs = parse_html_to_open_graph(soup) if soup is not None else {}
            self.assertEqual(open_graph_of(page, "text/html"), theirs, page[:120])

    def test_summaries_as_synapse(self) -> None:
        from synapse.media.preview_html import summarize_paragraphs as synapse_summarize

        for nodes in (["short"], ["a " * 150, "b " * 150], ["x" * 700], ["para one", "", "para two " * 60], []):
            self.assertEqual(summarize_paragraphs(list(nodes)), synapse_summarize(list(nodes)), nodes[:1])


class CharsetTest(unittest.TestCase):
    def test_charset(self) -> None:
        self.assertEqual(charset_of(b"", "text/html; charset=ISO-8859-1"), "iso8859-1")
        self.assertEqual(charset_of(b'<meta charset="windows-1252">', "text/html"), "cp1252")
        self.assertEqual(charset_of(b'<meta http-equiv="Content-Type" content="text/html; charset=koi8-r">', None), "koi8-r")
        self.assertEqual(charset_of(b"<meta charset=nonsense>", "text/html; charset=bogus"), "utf-8")
