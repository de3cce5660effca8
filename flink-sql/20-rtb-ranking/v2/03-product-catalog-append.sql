-- product-catalog is compacted too: read every entry as an event so the latest price is chosen
-- by updated_ts, never by arrival (a late older entry must not override a newer price).
ALTER TABLE `product-catalog` SET ('changelog.mode' = 'append')
