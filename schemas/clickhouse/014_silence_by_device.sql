-- 014 silences by device (静默, issue 17): an event's IoT device is kept with it as a signal's
-- evidence, so that a silence can name a device (a fire alarm under repair) and hold back the
-- signals resting on its alarms alone. Rows written before this version have none.

ALTER TABLE fengqiao.signal_evidence
    ADD COLUMN IF NOT EXISTS device String DEFAULT '' COMMENT 'the IoT device that sent it (attributes.device_id)';

ALTER TABLE fengqiao.silences
    ADD COLUMN IF NOT EXISTS device Nullable(String) COMMENT 'an IoT device: signals resting on its alarms alone';
