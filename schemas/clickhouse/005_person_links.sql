-- 005 person links (同人关联): which person pseudonym each identifier pseudonym names in its
-- county, as the correlator links them (an ID number and a mobile named together for one person,
-- a name with either). events.subjects holds each person by their strongest identifier as the
-- event named them; join on identifier (and county) to follow one person across sources.
-- Pseudonyms only: no row reveals an identifier. The latest change of an identifier wins.

-- Every identifier each person of an event was named by (pseudonyms), beside subjects; events
-- written before this version have none.
ALTER TABLE fengqiao.events
    ADD COLUMN IF NOT EXISTS identities Array(Tuple(id_number Nullable(String), mobile Nullable(String), name String))
    DEFAULT [] COMMENT 'per person named: the pseudonyms of their ID number, mobile and name';

CREATE TABLE IF NOT EXISTS fengqiao.person_links
(
    county        FixedString(6) COMMENT 'links are kept per county',
    identifier    String COMMENT 'pseudonym of an ID number, a mobile or a name, as in events.subjects',
    kind          LowCardinality(String) COMMENT 'id_number | mobile | name',
    person        String COMMENT 'the person pseudonym signals name',
    shared        Bool COMMENT 'named with two people (a household phone, two of one name): alone it names neither',
    region_code   FixedString(12) COMMENT 'where the event that made the link happened',
    linked_by     String COMMENT 'the event (uid) that made or changed the link',
    linked_at     DateTime64(3, 'Asia/Shanghai'),
    changed_at    DateTime64(3, 'Asia/Shanghai')
)
ENGINE = ReplacingMergeTree(changed_at)
ORDER BY (county, identifier)
SETTINGS non_replicated_deduplication_window = 1000;
