-- 010 one case per incident (并案, issue 17): a notice names the signals its own rests on, so the
-- desk joins it to their case, and an analyst sees which signals were worked as one. Notices
-- written before this version have none.

ALTER TABLE fengqiao.notices
    ADD COLUMN IF NOT EXISTS joins Array(String) DEFAULT [] COMMENT 'signals this one rests on: joined to their case';
