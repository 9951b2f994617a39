"""Server-rendered HTML for the sign-in and account pages: one stylesheet, no script, no
external resources. Every value goes through ``esc``; forms carry the CSRF token.

Accessible by construction: every input has a <label>, errors are announced
(role="alert") and tied to the form (aria-describedby), headings are in order, the
layout is one column that fits a phone."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

CSS = """
:root{color-scheme:light dark;--fg:#1b1f24;--bg:#f6f7f9;--card:#fff;--muted:#5b6470;--accent:#0b6bcb;--danger:#b42318;--border:#d0d5dd}
@media (prefers-color-scheme:dark){:root{--fg:#e6e8eb;--bg:#101214;--card:#1a1d21;--muted:#a3abb5;--accent:#5aa9ff;--danger:#ff8a80;--border:#3a4049}}
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:28rem;margin:0 auto;padding:1.5rem 1rem 3rem}
.card{background:var(--card);border:1px solid var(--border);border-radius:12px;padding:1.25rem}
h1{font-size:1.5rem;margin:0 0 1rem}h2{font-size:1.15rem;margin:1.5rem 0 .5rem}
label{display:block;font-weight:600;margin:.75rem 0 .25rem}
input[type=text],input[type=password]{width:100%;padding:.65rem .75rem;font:inherit;color:inherit;background:transparent;border:1px solid var(--border);border-radius:8px}
input:focus-visible,button:focus-visible,a:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
button{font:inherit;font-weight:600;padding:.65rem 1rem;border-radius:8px;border:1px solid var(--accent);background:var(--accent);color:#fff;cursor:pointer;min-height:44px}
button.secondary{background:transparent;color:var(--accent)}
button.danger{background:var(--danger);border-color:var(--danger)}
.actions{display:flex;gap:.75rem;flex-wrap:wrap;margin-top:1.25rem}
.actions form{margin:0}
.error{color:var(--danger);border:1px solid var(--danger);border-radius:8px;padding:.5rem .75rem;margin:0 0 1rem}
.notice{border:1px solid var(--border);border-radius:8px;padding:.5rem .75rem;margin:0 0 1rem}
.muted{color:var(--muted)}
ul.list{list-style:none;padding:0;margin:0}ul.list li{border-top:1px solid var(--border);padding:.75rem 0}
a{color:var(--accent)}
nav{margin-bottom:1rem}nav a{margin-right:1rem}
dl{margin:0}dt{font-weight:600;margin-top:.5rem}dd{margin:0}
input[type=email]{width:100%;padding:.65rem .75rem;font:inherit;color:inherit;background:transparent;border:1px solid var(--border);border-radius:8px}
figure.qr{margin:1rem 0;text-align:center}figure.qr svg{max-width:100%;height:auto;background:#fff;padding:4px;border-radius:8px}
code.secret{word-break:break-all}
ul.codes{list-style:none;padding:0;columns:2;font-size:1.1rem}ul.codes li{padding:.2rem 0}
"""


def esc(value: object) -> str:
    # Braces too: no value can then spell the {{csrf}} placeholder of the page renderer.
    return escape(str(value), quote=True).replace("{", "&#123;").replace("}", "&#125;")


def page(title: str, body: str, *, nav: str = "", script: str | None = None) -> str:
    # A page's one script (WebAuthn, OPAQUE) is a module from this server, allowed by the
    # page's Content-Security-Policy; every other page has none.
    tag = f'<script type="module" src="{esc(script)}"></script>' if script else ""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{esc(title)}</title>"
        '<link rel="stylesheet" href="/_wspr/static/account.css">'
        "</head><body><main>"
        f"{nav}<div class=\"card\"><h1>{esc(title)}</h1>{body}</div>"
        f"</main>{tag}</body></html>"
    )


def csrf_field() -> str:
    # Filled in by the page renderer (pages.Renderer.html), which knows the session.
    return '<input type="hidden" name="csrf" value="{{csrf}}">'


def error_box(error: str | None, ident: str = "form-error") -> str:
    if not error:
        return ""
    return f'<p class="error" role="alert" id="{esc(ident)}">{esc(error)}</p>'


def notice(text: str) -> str:
    return f'<p class="notice" role="status">{esc(text)}</p>'


def text_input(
    name: str, label: str, *, autocomplete: str = "off", value: str = "", readonly: bool = False, required: bool = True
) -> str:
    attrs = ' readonly' if readonly else ''
    attrs += ' required' if required else ''
    return (
        f'<label for="f-{esc(name)}">{esc(label)}</label>'
        f'<input type="text" id="f-{esc(name)}" name="{esc(name)}" value="{esc(value)}"'
        f' autocomplete="{esc(autocomplete)}" autocapitalize="none" spellcheck="false"{attrs}>'
    )


def password_input(name: str, label: str, *, autocomplete: str) -> str:
    return (
        f'<label for="f-{esc(name)}">{esc(label)}</label>'
        f'<input type="password" id="f-{esc(name)}" name="{esc(name)}" autocomplete="{esc(autocomplete)}" required>'
    )


def hidden(name: str, value: str) -> str:
    return f'<input type="hidden" name="{esc(name)}" value="{esc(value)}">'


def form(action: str, fields: Iterable[str], submit: str, *, error: str | None = None, danger: bool = False) -> str:
    described = ' aria-describedby="form-error"' if error else ""
    button_class = ' class="danger"' if danger else ""
    return (
        f"{error_box(error)}"
        f'<form method="post" action="{esc(action)}"{described}>{csrf_field()}'
        + "".join(fields)
        + f'<div class="actions"><button type="submit"{button_class}>{esc(submit)}</button></div></form>'
    )


def button_form(action: str, submit: str, fields: Iterable[str] = (), *, secondary: bool = False, danger: bool = False) -> str:
    cls = " class=\"secondary\"" if secondary else (" class=\"danger\"" if danger else "")
    return (
        f'<form method="post" action="{esc(action)}">{csrf_field()}'
        + "".join(fields)
        + f"<button type=\"submit\"{cls}>{esc(submit)}</button></form>"
    )


def step_form(step: str, fields: Iterable[str], submit: str, *, error: str | None = None) -> str:
    """The form of one sign-in step (posted to /_wspr/login with the step's name)."""
    return form("/_wspr/login", [hidden("step", step), *fields], submit, error=error)
