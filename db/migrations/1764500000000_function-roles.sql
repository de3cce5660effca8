-- Up Migration

-- One database role per worker function, each with only the grants its queries need; the RDS
-- master user is left to db-migrate. The roles can log in once db-migrate has set their
-- passwords from their Secrets Manager secrets (lambdas/db-migrate/role-passwords.ts); until
-- then they exist without a password. Roles are cluster-wide, so creating one that already
-- exists (another database on the same server, or a concurrent migration) is not an error.
DO $$
DECLARE
  role_name text;
BEGIN
  FOREACH role_name IN ARRAY ARRAY['adstream_click_balance', 'adstream_compensation', 'adstream_budget_reset', 'adstream_outbox_sweep', 'adstream_ranking_cache'] LOOP
    BEGIN
      EXECUTE format('CREATE ROLE %I LOGIN', role_name);
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL;
    END;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), role_name);
    EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', role_name);
  END LOOP;
END
$$;

-- Nobody but the owner creates objects in the schema.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- click-balance: charges clicks, accrues day spend, pauses campaigns, writes and publishes the outbox.
GRANT SELECT, UPDATE ON advertisers, campaigns TO adstream_click_balance;
GRANT SELECT, INSERT ON ad_balance_histories TO adstream_click_balance;
GRANT SELECT, INSERT, UPDATE ON campaign_daily_spend TO adstream_click_balance;
GRANT SELECT ON click_voids TO adstream_click_balance;
GRANT SELECT, INSERT, UPDATE ON outbox TO adstream_click_balance;
GRANT SELECT, UPDATE ON outbox_publishers TO adstream_click_balance;
GRANT SELECT, INSERT ON dead_letters TO adstream_click_balance;

-- compensation: refunds or voids duplicate clicks, restores day spend, resumes campaigns.
GRANT SELECT, UPDATE ON advertisers, campaigns TO adstream_compensation;
GRANT SELECT, INSERT ON ad_balance_histories, click_voids, duplicate_clicks TO adstream_compensation;
GRANT SELECT, UPDATE ON campaign_daily_spend TO adstream_compensation;
GRANT SELECT, INSERT, UPDATE ON outbox TO adstream_compensation;
GRANT SELECT, UPDATE ON outbox_publishers TO adstream_compensation;
GRANT SELECT, INSERT ON dead_letters TO adstream_compensation;

-- budget-reset: resumes budget-paused campaigns of the new day and announces it.
GRANT SELECT, UPDATE ON campaigns TO adstream_budget_reset;
GRANT SELECT ON advertisers, campaign_daily_spend TO adstream_budget_reset;
-- It locks the advertisers it may touch (SELECT … FOR UPDATE, in id order, as the click and
-- compensation workers do); a row lock needs UPDATE on one column. updated_at is the harmless
-- one: the role can change neither a balance nor an id.
GRANT UPDATE (updated_at) ON advertisers TO adstream_budget_reset;
GRANT SELECT, INSERT, UPDATE ON outbox TO adstream_budget_reset;
GRANT SELECT, UPDATE ON outbox_publishers TO adstream_budget_reset;

-- outbox-sweep: publishes what was left unpublished; reads and marks the outbox only.
GRANT SELECT, UPDATE ON outbox, outbox_publishers TO adstream_outbox_sweep;

-- ranking-cache: writes Redis; the database only records the records it could not apply.
GRANT SELECT, INSERT ON dead_letters TO adstream_ranking_cache;

GRANT USAGE ON SEQUENCE ad_balance_histories_id_seq TO adstream_click_balance, adstream_compensation;
GRANT USAGE ON SEQUENCE outbox_id_seq TO adstream_click_balance, adstream_compensation, adstream_budget_reset;
GRANT USAGE ON SEQUENCE dead_letters_id_seq TO adstream_click_balance, adstream_compensation, adstream_ranking_cache;

-- Down Migration

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM adstream_click_balance, adstream_compensation, adstream_budget_reset, adstream_outbox_sweep, adstream_ranking_cache;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM adstream_click_balance, adstream_compensation, adstream_budget_reset, adstream_outbox_sweep, adstream_ranking_cache;
REVOKE USAGE ON SCHEMA public FROM adstream_click_balance, adstream_compensation, adstream_budget_reset, adstream_outbox_sweep, adstream_ranking_cache;
