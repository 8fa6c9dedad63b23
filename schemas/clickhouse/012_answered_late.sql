-- 012 answered late (迟到回应, issue 17): an absence signal whose expected event happened before
-- the deadline but reached fengqiao after it is updated as answered, and so is its notice, on
-- which the desk closes the case. Rows written before this version have none.

ALTER TABLE fengqiao.signals
    ADD COLUMN IF NOT EXISTS answered_at Nullable(DateTime64(3, 'Asia/Shanghai')) COMMENT 'when its answer happened, in time, though it came late';

ALTER TABLE fengqiao.notices
    ADD COLUMN IF NOT EXISTS answered_at Nullable(DateTime64(3, 'Asia/Shanghai')) COMMENT 'the signal was answered in time after all: the case closes itself';
