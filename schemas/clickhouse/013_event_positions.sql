-- 013 event positions (issue 17): where the worker read each event on fengqiao's events topic, so
-- that a backtest (fengqiao rules backtest) reads each partition in the order the live run did,
-- late arrivals where they arrived. Events stored before this version have -1 and are read in
-- event-time order.

ALTER TABLE fengqiao.events
    ADD COLUMN IF NOT EXISTS topic_partition Int32 DEFAULT -1 COMMENT 'its partition of the events topic (-1: not kept)';

ALTER TABLE fengqiao.events
    ADD COLUMN IF NOT EXISTS topic_offset Int64 DEFAULT -1 COMMENT 'its offset there: the order the worker read it in';
