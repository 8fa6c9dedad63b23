-- 008 the matter catalogue at the desk (issue 20): a notice names the grid matters its signal
-- rests on, and an assignment says whether the case was handed to the community's grid workers
-- (交由网格办理), which the negative list (负面清单) refuses for some matters. Rows written before
-- this version have none.

ALTER TABLE fengqiao.notices
    ADD COLUMN IF NOT EXISTS matters Array(LowCardinality(String)) DEFAULT [] COMMENT 'grid matters among the evidence';

ALTER TABLE fengqiao.dispatch_actions
    ADD COLUMN IF NOT EXISTS to_grid Bool DEFAULT false COMMENT 'assign: handed to the grid workers (交由网格办理)';
