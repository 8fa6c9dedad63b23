-- 003 evaluation (考评, Dalian art. 12, 22): how fast and how well centres and departments handle
-- signals, as views the dashboards and analysts read. Drills are left out. A view reads its
-- tables as the querying user, so each centre sees only its own jurisdiction here too.

-- A notice that updates one already sent (more evidence, same level) pages no one.
ALTER TABLE fengqiao.notices
    ADD COLUMN IF NOT EXISTS is_update Bool DEFAULT false COMMENT 'an update in place, not a new page';

-- Per signal: what its centres and departments did, from the accepted actions. A signal is
-- closed when its latest close or reopen is a close (last_state = 'close').
CREATE VIEW IF NOT EXISTS fengqiao.signal_handling AS
SELECT
    signal_id,
    countIf(kind = 'acknowledge') AS acks,
    minIf(recorded_at, kind = 'acknowledge') AS first_ack,
    groupArrayIf(recorded_at, kind = 'feedback') AS feedbacks,
    countIf(kind = 'close') AS closes,
    minIf(recorded_at, kind = 'close') AS first_close,
    countIf(kind = 'reopen') AS reopens,
    argMaxIf(kind, recorded_at, kind IN ('close', 'reopen')) AS last_state
FROM fengqiao.dispatch_actions FINAL
WHERE outcome = 'accepted'
GROUP BY signal_id;

-- Per handling centre (承办中心): acknowledgement latency from the signal being raised, closure
-- within the handling notice's deadline, what is overdue now, and how often a closure was reopened.
CREATE VIEW IF NOT EXISTS fengqiao.evaluation_by_centre AS
WITH
    handled AS (
        SELECT n.signal_id AS signal_id, n.centre_code AS centre_code, n.centre_level AS centre_level,
               n.close_due AS close_due, s.raised_at AS raised_at
        FROM fengqiao.notices AS n FINAL
        JOIN (SELECT signal_id, raised_at FROM fengqiao.signals FINAL WHERE NOT drill) AS s USING (signal_id)
        WHERE n.role = 'handle' AND NOT n.drill
    )
SELECT
    h.centre_code AS centre_code,
    any(h.centre_level) AS centre_level,
    count() AS signals,
    countIf(a.acks > 0) AS acknowledged,
    quantileExactIf(0.5)(dateDiff('second', h.raised_at, a.first_ack) / 60, a.acks > 0) AS ack_p50_minutes,
    quantileExactIf(0.9)(dateDiff('second', h.raised_at, a.first_ack) / 60, a.acks > 0) AS ack_p90_minutes,
    countIf(a.closes > 0) AS closed,
    countIf(a.closes > 0 AND a.first_close <= h.close_due) AS closed_on_time,
    if(closed = 0, NULL, round(closed_on_time / closed, 3)) AS on_time_rate,
    countIf(a.last_state != 'close' AND h.close_due < now64(3)) AS overdue,
    countIf(a.reopens > 0) AS reopened,
    if(closed = 0, NULL, round(reopened / closed, 3)) AS reopen_rate
FROM handled AS h
LEFT JOIN fengqiao.signal_handling AS a USING (signal_id)
GROUP BY centre_code;

-- Per department (分办/协同部门): every signal assigned to it or co-handled by it, the time from
-- its assignment to the first feedback (处置反馈), closure on time, overdue now, reopened.
CREATE VIEW IF NOT EXISTS fengqiao.evaluation_by_department AS
WITH
    assigned AS (
        SELECT signal_id, department, min(recorded_at) AS assigned_at
        FROM fengqiao.dispatch_actions FINAL
        ARRAY JOIN departments AS department
        WHERE outcome = 'accepted' AND kind IN ('assign', 'coordinate')
        GROUP BY signal_id, department
    ),
    due AS (
        SELECT signal_id, close_due FROM fengqiao.notices FINAL WHERE role = 'handle' AND NOT drill
    )
SELECT
    d.department AS department,
    count() AS signals,
    countIf(arrayExists(t -> t >= d.assigned_at, a.feedbacks)) AS answered,
    quantileExactIf(0.5)(dateDiff('second', d.assigned_at, arrayMin(arrayFilter(t -> t >= d.assigned_at, a.feedbacks))) / 60,
                         arrayExists(t -> t >= d.assigned_at, a.feedbacks)) AS feedback_p50_minutes,
    quantileExactIf(0.9)(dateDiff('second', d.assigned_at, arrayMin(arrayFilter(t -> t >= d.assigned_at, a.feedbacks))) / 60,
                         arrayExists(t -> t >= d.assigned_at, a.feedbacks)) AS feedback_p90_minutes,
    countIf(a.closes > 0) AS closed,
    countIf(a.closes > 0 AND a.first_close <= u.close_due) AS closed_on_time,
    if(closed = 0, NULL, round(closed_on_time / closed, 3)) AS on_time_rate,
    countIf(a.last_state != 'close' AND u.close_due < now64(3)) AS overdue,
    countIf(a.reopens > 0) AS reopened,
    if(closed = 0, NULL, round(reopened / closed, 3)) AS reopen_rate
FROM assigned AS d
LEFT JOIN fengqiao.signal_handling AS a USING (signal_id)
JOIN due AS u USING (signal_id)
GROUP BY department;
