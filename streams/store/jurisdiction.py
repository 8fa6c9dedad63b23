"""Jurisdiction (属地管辖) in ClickHouse: a centre's analysts read only rows of their own region.

Every table carries a ``region_code`` (12 digits) and a centre's code is the prefix of its
jurisdiction (city 4, district 6, street 9, community 12 digits), so one condition scopes every
table, rollups included. Dead letters have no trustworthy region: centres do not read them;
the platform's operators do.

Server mode: a role per centre (``centre_<code>``) from the region registry, and on every table a
RESTRICTIVE row policy for everyone but the platform's own roles, over a permissive base.
Restrictive policies are ANDed with any other policy, so a permissive policy added later by
hand cannot widen a centre's view. A user granted several centres sees their union.
Embedded mode (chdb has no users): ``fengqiao sql --as-centre CODE`` applies the same condition
through ``additional_table_filters`` in a read-only session, which refuses changes to settings.
"""

from __future__ import annotations

from schemas.clickhouse.ddl import DATABASE
from schemas.reference.regions import CENTRE_LEVELS, UnknownRegion, level_of_centre, pad, registry

# Every table, with whether centres see it (scoped by region_code) or not at all.
SCOPED_TABLES = ("events", "signals", "signal_evidence", "notices", "dispatch_actions", "regions",
                 "events_hourly", "signals_hourly", "late_events", "person_links", "silences")
UNSCOPED_FOR_CENTRES = ("dead_letters",)
SHARED = ("rule_changes",)  # the rules' versions: about no place and no person, every centre reads them
TABLES = SCOPED_TABLES + UNSCOPED_FOR_CENTRES + SHARED

ANALYST_ROLE = "fengqiao_analyst"  # SELECT on the database; every centre role holds it
PLATFORM_ROLES = ("fengqiao_writer", "fengqiao_platform")  # the workers; the platform's operators
ROLE_PREFIX = "centre_"

# The roles' centres, as a condition a row policy evaluates per query.
_BY_ROLES = (f"arrayExists(c -> startsWith(region_code, c), arrayMap(r -> substring(r, {len(ROLE_PREFIX) + 1}), "
             f"arrayFilter(r -> startsWith(r, '{ROLE_PREFIX}'), currentRoles())))")


def check_centre(code: str) -> str:
    """A centre code that exists in the registry, or UnknownRegion."""
    level_of_centre(code)
    registry().get(pad(code) if len(code) < 12 else code)
    return code


def condition(table: str, centre: str) -> str:
    """The filter that keeps ``centre``'s rows of ``table`` (``centre`` is digits only)."""
    if not centre.isdigit():
        raise UnknownRegion(centre)
    if table in SHARED:
        return "1"
    return "0" if table in UNSCOPED_FOR_CENTRES else f"startsWith(region_code, '{centre}')"


def table_filters(centre: str) -> str:
    """``additional_table_filters`` for chdb: every table of the database scoped to ``centre``."""
    pairs = ", ".join(f"'{DATABASE}.{t}': '{condition(t, centre).replace(chr(39), chr(92) + chr(39))}'"
                      for t in TABLES)
    return "{" + pairs + "}"


def role(centre: str) -> str:
    return f"{ROLE_PREFIX}{centre}"


def access_statements(cluster: str | None = None) -> list[str]:
    """Roles and row policies for a server (or a cluster): the same scoping as ``condition``."""
    on = f" ON CLUSTER '{cluster}'" if cluster else ""
    out = [f"CREATE ROLE IF NOT EXISTS {r}{on}" for r in (ANALYST_ROLE, *PLATFORM_ROLES)]
    out += [f"GRANT{on} SELECT ON {DATABASE}.* TO {ANALYST_ROLE}",
            f"GRANT{on} SELECT, INSERT ON {DATABASE}.* TO fengqiao_writer",
            f"GRANT{on} SELECT ON {DATABASE}.* TO fengqiao_platform"]
    reg = registry()
    centres = sorted(r.prefix for level in CENTRE_LEVELS for r in reg.of_level(level))
    for centre in centres:
        out += [f"CREATE ROLE IF NOT EXISTS {role(centre)}{on}", f"GRANT{on} {ANALYST_ROLE} TO {role(centre)}"]
    exempt = ", ".join(PLATFORM_ROLES)
    targets = list(TABLES)
    if cluster:  # the shards' local tables are read too, under the same user
        targets += [f"{t}_local" for t in TABLES if t != "regions"]
    for table in targets:
        base = table.removesuffix("_local")
        scoped = "1" if base in SHARED else "0" if base in UNSCOPED_FOR_CENTRES else _BY_ROLES
        out += [
            f"CREATE ROW POLICY IF NOT EXISTS readable{on} ON {DATABASE}.{table} FOR SELECT USING 1 "
            "AS PERMISSIVE TO ALL",
            f"CREATE ROW POLICY IF NOT EXISTS jurisdiction{on} ON {DATABASE}.{table} FOR SELECT "
            f"USING {scoped} AS RESTRICTIVE TO ALL EXCEPT {exempt}",
        ]
    return out
