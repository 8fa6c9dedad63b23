"""One person, one pseudonym (同人关联): identifiers named together for one person are linked.

Validation gives every person an event names an ``Identity``: the pseudonyms of their ID number,
mobile and name (within a community). Here each is resolved to one *person pseudonym*, against
links kept as state, so that a police call naming someone by ID number and mobile and grid
reports naming them by mobile alone are about one person:
- a person first met takes the pseudonym of their strongest identifier (ID number, mobile, name);
- identifiers named together join one person; when that joins two people already known, the
  one first met (event time, then pseudonym) keeps the pseudonym and the other's is merged into
  it (``Merge``: the correlator moves its windows and risk);
- an ID number is decisive: two people with different ID numbers are never joined; a mobile
  named with both is *shared* (a household's phone) and, alone, names neither;
- a name is weak: it joins the person it is named with, and merges a person known only by that
  name, but never joins two people who hold an ID number or a mobile: named with a second such
  person it is shared (two 张伟 in one community), and alone names only itself.

Links are kept per county (属地): a county's events live in one partition of ``events``, read
in event-time order, so the same events give the same links and pseudonyms in a replay. The
state holds pseudonyms only: a link never reveals an identifier.

State keys: ``{county}|{identifier}`` -> ``IdentifierLink``; ``{county}|person|{pseudonym}``
-> ``Person``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from schemas.contracts.events import Identity, NormalisedEvent
from schemas.contracts.signals import PersonLink

LINKS_FORMAT = 1


def links_format(doc: dict[str, Any]) -> int:
    """The format of a document of the links table; refuses one this worker cannot read."""
    version = doc.get("format")
    if not isinstance(version, int) or version > LINKS_FORMAT:
        raise ValueError(f"person link of format {version!r}; this worker reads format {LINKS_FORMAT}. A newer "
                         "fengqiao wrote it: run that version, or start this one with a new FENGQIAO_APP_ID")
    return version


class Links(Protocol):
    """Where links live: a dict in tests, a partition of the correlate step's state table."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, value: dict[str, Any]) -> None: ...

    def delete(self, key: str) -> None: ...


class DictLinks(dict):  # type: ignore[type-arg]
    def put(self, key: str, value: dict[str, Any]) -> None:
        self[key] = value

    def delete(self, key: str) -> None:
        self.pop(key, None)


class IdentifierLink(NamedTuple):
    """Which person an identifier names; ``others``: the other people it was named with, if any
    (then it is shared, and alone names none of them)."""

    person: str
    kind: str  # id_number | mobile | name
    others: tuple[str, ...] = ()

    @property
    def shared(self) -> bool:
        return bool(self.others)

    @property
    def people(self) -> tuple[str, ...]:
        return (self.person, *self.others)

    def naming(self, person: str) -> IdentifierLink:
        """This link, named with ``person`` too."""
        return self if person in self.people else self._replace(others=(*self.others, person))


class Person(NamedTuple):
    """A person as linked so far: when first met, their ID number if known, every identifier."""

    first_ms: int
    id_number: str | None
    members: tuple[str, ...]

    @property
    def strong(self) -> bool:
        """Known by an ID number or a mobile (members ``i:``, ``m:``), not by a name alone."""
        return any(not m.startswith("n:") for m in self.members)


@dataclass(frozen=True)
class Merge:
    """Two pseudonyms found to be one person: ``absorbed``'s state moves to ``into``."""

    county: str
    absorbed: str
    into: str


@dataclass(frozen=True)
class LinkChange:
    """An identifier (re)linked, as the person-links topic carries it."""

    county: str
    identifier: str
    kind: str
    person: str
    shared: bool


@dataclass
class Resolution:
    """What one event's identities resolved to: a person pseudonym each (in order), the merges
    they caused and the links they changed."""

    people: list[str]
    merges: list[Merge] = field(default_factory=list)
    changes: list[LinkChange] = field(default_factory=list)

    def records(self, event: NormalisedEvent, now: datetime) -> list[PersonLink]:
        """The links changed, each as it ends up, as the person-links topic carries them."""
        last = {c.identifier: c for c in self.changes}
        return [PersonLink(county=c.county, identifier=c.identifier, kind=c.kind, person=c.person, shared=c.shared,
                           region_code=event.region_code, linked_by=event.uid, linked_at=event.occurred_at,
                           changed_at=now) for c in last.values()]


def _member(kind: str, pseudonym: str) -> str:
    """A person's member identifiers carry their kind: ``i:`` ID number, ``m:`` mobile, ``n:`` name."""
    return f"{kind[0]}:{pseudonym}"


class Linker:
    """Resolves the identities of events in one county against the links in ``links``."""

    def __init__(self, links: Links, county: str) -> None:
        self.links, self.county = links, county
        self.result = Resolution([])
        self._into: dict[str, str] = {}

    # -- state ---------------------------------------------------------------------------
    def _link(self, identifier: str) -> IdentifierLink | None:
        doc = self.links.get(f"{self.county}|{identifier}")
        return IdentifierLink(doc["person"], doc["kind"], tuple(doc["others"])) if doc else None

    def _set_link(self, identifier: str, link: IdentifierLink) -> None:
        self.links.put(f"{self.county}|{identifier}", {"format": LINKS_FORMAT, "person": link.person,
                                                      "kind": link.kind, "others": list(link.others)})
        self.result.changes.append(LinkChange(self.county, identifier, link.kind, link.person, link.shared))

    def _share(self, identifier: str, link: IdentifierLink, person: str) -> None:
        """``identifier`` named with ``person`` as well as whom it names: shared, and a member of
        each, so that a merge proving them one person makes it theirs again."""
        if person not in link.people:
            self._set_link(identifier, link.naming(person))
            self._add_member(person, link.kind, identifier)

    def _person(self, pseudonym: str) -> Person | None:
        doc = self.links.get(f"{self.county}|person|{pseudonym}")
        return Person(doc["first_ms"], doc["id_number"], tuple(doc["members"])) if doc else None

    def _set_person(self, pseudonym: str, person: Person) -> None:
        self.links.put(f"{self.county}|person|{pseudonym}",
                       {"format": LINKS_FORMAT, "first_ms": person.first_ms, "id_number": person.id_number,
                        "members": list(person.members)})

    # -- resolution ----------------------------------------------------------------------
    def resolve(self, identities: Iterable[Identity], at_ms: int) -> Resolution:
        self.result, self._into = Resolution([]), {}
        people = [self._one(identity, at_ms) for identity in identities]
        self.result.people = [self._current(p) for p in people]
        return self.result

    def _current(self, pseudonym: str) -> str:
        while pseudonym in self._into:
            pseudonym = self._into[pseudonym]
        return pseudonym

    def _one(self, identity: Identity, at_ms: int) -> str:
        person = self._strong(identity, at_ms)
        name = self._link(identity.name)
        if person is None:  # named by a name alone (or with a shared mobile)
            if name is None:
                return self._new(identity.name, "name", at_ms)
            return identity.name if name.shared else name.person
        if name is None:
            self._join(person, identity.name, "name")
        elif name.shared:
            self._share(identity.name, name, person)
        elif name.person != person:
            other = self._person(name.person)
            if other is not None and not other.strong:  # the name was all that was known of them
                person = self._merge(person, name.person)
            else:  # two people of one name in one community: the name alone names neither
                self._share(identity.name, name, person)
        return person

    def _strong(self, identity: Identity, at_ms: int) -> str | None:
        """The person an identity's ID number and mobile name, linking them; None if it has neither
        (or only a shared mobile)."""
        by_id = self._link(identity.id_number) if identity.id_number else None
        mobile = self._link(identity.mobile) if identity.mobile else None
        person = by_id.person if by_id else None
        if identity.mobile and mobile is not None and not mobile.shared:
            holder = self._person(mobile.person)
            if person is None and identity.id_number and holder is not None and holder.id_number is not None:
                person = self._new(identity.id_number, "id_number", at_ms)  # another ID number: not theirs
            if person is None:
                person = mobile.person
                if identity.id_number:
                    self._join(person, identity.id_number, "id_number")
            elif person != mobile.person:
                mine = self._person(person)
                if holder is not None and holder.id_number is not None and mine is not None and mine.id_number:
                    self._share(identity.mobile, mobile, person)  # two ID numbers, one phone
                else:
                    person = self._merge(person, mobile.person)
            return person
        if person is None and identity.id_number:
            person = self._new(identity.id_number, "id_number", at_ms)
        if identity.mobile and mobile is not None and person is not None:  # shared already
            self._share(identity.mobile, mobile, person)
        if identity.mobile and mobile is None:
            if person is None:
                return self._new(identity.mobile, "mobile", at_ms)
            self._join(person, identity.mobile, "mobile")
        return person

    def _new(self, identifier: str, kind: str, at_ms: int) -> str:
        self._set_person(identifier, Person(at_ms, identifier if kind == "id_number" else None,
                                            (_member(kind, identifier),)))
        self._set_link(identifier, IdentifierLink(identifier, kind))
        return identifier

    def _join(self, person: str, identifier: str, kind: str) -> None:
        self._add_member(person, kind, identifier)
        self._set_link(identifier, IdentifierLink(person, kind))

    def _add_member(self, person: str, kind: str, identifier: str) -> None:
        known = self._person(person)
        assert known is not None, f"person {person} has no record"
        member = _member(kind, identifier)
        if member not in known.members:
            self._set_person(person, known._replace(
                id_number=known.id_number or (identifier if kind == "id_number" else None),
                members=(*known.members, member)))

    def _merge(self, a: str, b: str) -> str:
        """Two people found to be one: the one first met keeps its pseudonym."""
        pa, pb = self._person(a), self._person(b)
        assert pa is not None and pb is not None, f"merging {a} and {b} without their records"
        (into, kept), (absorbed, gone) = sorted(((a, pa), (b, pb)), key=lambda x: (x[1].first_ms, x[0]))
        members = kept.members + tuple(m for m in gone.members if m not in kept.members)
        self._set_person(into, Person(kept.first_ms, kept.id_number or gone.id_number, members))
        self.links.delete(f"{self.county}|person|{absorbed}")
        for member in gone.members:
            _, _, identifier = member.partition(":")
            link = self._link(identifier)
            assert link is not None, f"member {identifier} of {absorbed} has no link"
            people = tuple(dict.fromkeys(into if p == absorbed else p for p in link.people))
            if people != link.people:  # a shared one named with both is theirs alone again
                self._set_link(identifier, link._replace(person=people[0], others=people[1:]))
        self._into[absorbed] = into
        self.result.merges.append(Merge(self.county, absorbed, into))
        return into


def resolve(links: Links, county: str, identities: Iterable[Identity], at_ms: int) -> Resolution:
    """The person pseudonym of each identity of one event in ``county`` (pure but for ``links``)."""
    return Linker(links, county).resolve(identities, at_ms)
