-- 007 real places (issue 20): the region dimension says when each unit was valid and where its
-- code comes from (the pack's source: the National Bureau of Statistics' codes of a given year,
-- as a registry package publishes them). Rows loaded before this version have them empty.

ALTER TABLE fengqiao.regions
    ADD COLUMN IF NOT EXISTS valid_from Nullable(Date) COMMENT 'when the unit came into being, when known',
    ADD COLUMN IF NOT EXISTS valid_to Nullable(Date) COMMENT 'when it was abolished, when known',
    ADD COLUMN IF NOT EXISTS source String DEFAULT '' COMMENT 'the pack''s source, its version and the year of its codes';
