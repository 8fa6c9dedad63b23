-- 006 what a notice says of its case (issue 19): the entity the signal is about, the place's
-- names, and the link to the case page on the console, so a centre acts without opening another
-- system. Notices written before this version have them empty.

ALTER TABLE fengqiao.notices
    ADD COLUMN IF NOT EXISTS entity_level LowCardinality(String) DEFAULT '' COMMENT 'community, building, person, …',
    ADD COLUMN IF NOT EXISTS entity String DEFAULT '' COMMENT 'a code, a building key, a person pseudonym, …',
    ADD COLUMN IF NOT EXISTS place String DEFAULT '' COMMENT 'the region''s names from the city down',
    ADD COLUMN IF NOT EXISTS case_url String DEFAULT '' COMMENT 'the case page on the console, empty if unknown';
