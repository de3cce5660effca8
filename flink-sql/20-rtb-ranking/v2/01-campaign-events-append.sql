-- campaign-events is compacted, so Confluent infers it as an upsert table keyed by the message
-- key: each arrival replaces the campaign's row, and the ranking never sees the events it
-- orders (v1: a late older event overrode a newer one, a status-only CAMPAIGN_PAUSED erased the
-- definition; flink-sql/scenarios/rtb-ranking/ shows both). Read every record as an event.
-- Table-level: applies to every statement created after it (only the ranking reads the table).
ALTER TABLE `campaign-events` SET ('changelog.mode' = 'append')
