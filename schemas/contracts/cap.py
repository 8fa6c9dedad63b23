"""CAP 1.2 XML into the JSON form of ``EmergencyBroadcast``.

Parsed with defusedxml and no DTD allowed at all: external entities (XXE) and entity
expansion (billion laughs) are refused before anything is expanded. Elements fengqiao does
not use (resource, code, addresses, eventCode, responseType, web, contact…) are ignored.
"""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

NS = "urn:oasis:names:tc:emergency:cap:1.2"
ALERT_FIELDS = ("identifier", "sender", "sent", "status", "msgType", "scope", "source", "note", "incidents")
INFO_FIELDS = ("language", "event", "urgency", "severity", "certainty", "senderName", "headline",
               "description", "instruction", "effective", "onset", "expires")


class CapError(ValueError):
    """CAP XML that cannot be read: ``reason`` is invalid_xml, xml_forbidden or not_cap."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def looks_like_xml(raw: bytes) -> bool:
    return raw.lstrip()[:1] == b"<"


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


def _text(el: Element, name: str) -> str | None:
    child = el.find(_q(name))
    return child.text.strip() if child is not None and child.text else None


def _texts(el: Element, name: str) -> list[str]:
    return [c.text.strip() for c in el.findall(_q(name)) if c.text and c.text.strip()]


def _pairs(el: Element, name: str) -> list[dict[str, str]]:
    return [{"valueName": _text(p, "valueName") or "", "value": _text(p, "value") or ""} for p in el.findall(_q(name))]


def _fields(el: Element, names: tuple[str, ...]) -> dict[str, Any]:
    return {n: v for n in names if (v := _text(el, n)) is not None}


def parse_cap(raw: bytes) -> dict[str, Any]:
    """The alert as a dict for ``EmergencyBroadcast.model_validate``; raises ``CapError``."""
    try:
        root = fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise CapError("xml_forbidden", f"refused: {type(exc).__name__} (DTDs and entities are not allowed)") from exc
    except ParseError as exc:
        raise CapError("invalid_xml", f"not well-formed XML: {exc}") from exc
    if root.tag != _q("alert"):
        raise CapError("not_cap", f"root element is {root.tag}, not a CAP 1.2 alert ({NS})")
    alert = _fields(root, ALERT_FIELDS)
    references = _text(root, "references")
    alert["references"] = references.split() if references else []
    alert["info"] = [
        {
            **_fields(info, INFO_FIELDS),
            "category": _texts(info, "category"),
            "parameter": _pairs(info, "parameter"),
            "area": [
                {
                    "areaDesc": _text(area, "areaDesc") or "",
                    "polygon": _texts(area, "polygon"),
                    "circle": _texts(area, "circle"),
                    "geocode": _pairs(area, "geocode"),
                }
                for area in info.findall(_q("area"))
            ],
        }
        for info in root.findall(_q("info"))
    ]
    return alert
