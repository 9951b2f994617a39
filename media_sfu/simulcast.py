"""Simulcast negotiation for aiortc, which knows neither ``a=rid`` nor ``a=simulcast``.

livekit-client publishes video with simulcast (``a=simulcast:send q;h;f`` + ``a=rid`` lines,
no ``a=ssrc``). aiortc understands neither, and Chrome rejects its own next offer ("negotiates
simulcast but does not negotiate the RID RTP header extension") once an answer dropped the RID
header extension. So the SFU:

* lets aiortc negotiate the RID / repaired-RID header extensions (they are only parsed;
  ``aiortc_internals.install_rid_extensions``);
* adds ``a=rid:<rid> recv`` and ``a=simulcast:recv ...`` to its answer, accepting every
  layer (``sfu.simulcast: true``, each subscriber then gets the layer it asks for) or only
  the highest one (LiveKit orders layers low to high), so the browser sends one
  full-quality stream;
* routes RTP whose SSRC was never signalled by its MID header extension, as aiortc 1.16 only
  routes by SSRC or by a payload type unique across the bundle
  (``aiortc_internals.route_unsignalled_by_mid``).

This module holds the SDP side, plain text functions.
"""

from __future__ import annotations

import re


def _sections(sdp: str) -> list[str]:
    parts = re.split(r"\r?\n(?=m=)", sdp.strip())
    return parts


def offered_simulcast(section: str) -> list[str]:
    """Send rids offered in one m-section, in the order of ``a=simulcast:send``."""
    m = re.search(r"^a=simulcast:send (\S+)", section, re.MULTILINE)
    if not m:
        return []
    rids = []
    for alt in m.group(1).split(";"):
        rid = alt.split(",")[0].lstrip("~")
        if rid:
            rids.append(rid)
    return rids


def offered_rids_by_mid(offer_sdp: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for section in _sections(offer_sdp)[1:]:
        m = re.search(r"^a=mid:(\S+)", section, re.MULTILINE)
        rids = offered_simulcast(section)
        if m and rids:
            out[m.group(1)] = rids
    return out


def accept_layers(offer_sdp: str, answer_sdp: str, all_layers: bool) -> str:
    """Accept every offered simulcast layer, or only the top one, in the answer."""
    return accept_top_layer(offer_sdp, answer_sdp, all_layers=all_layers)


def accept_top_layer(offer_sdp: str, answer_sdp: str, *, all_layers: bool = False) -> str:
    """Add ``a=rid``/``a=simulcast:recv`` for the top offered layer to each simulcast m-section."""
    offer = _sections(offer_sdp)[1:]
    head, *answer = _sections(answer_sdp)
    if len(offer) != len(answer):
        return answer_sdp
    out = [head]
    for o, a in zip(offer, answer, strict=True):
        rids = offered_simulcast(o)
        if rids and a.startswith("m=video") and not a.startswith("m=video 0 "):
            accepted = rids if all_layers else rids[-1:]
            lines = [f"a=rid:{rid} recv" for rid in accepted] + [f"a=simulcast:recv {';'.join(accepted)}"]
            a = a.rstrip("\r\n") + "\r\n" + "\r\n".join(lines)
        out.append(a.rstrip("\r\n"))
    return "\r\n".join(out) + "\r\n"
