-- Slot records and quota accounting (upload/slotstore/pgslots).
--
-- Quotas are exact under concurrency, also with several mediaslot instances
-- on one database: a slot is issued by one call of mediaslot_issue_slot,
-- which takes transaction-scoped advisory locks on the quotas it checks
-- (the owner's for the daily and user quotas, the domain's, the service's;
-- always in that order), then sums, in one statement (one snapshot), what
-- is used and what pending slots hold, and inserts the slot if it fits. Two
-- requests that share a quota are serialized on its lock; a completion
-- (hold turned into usage in one transaction), an expiry, a forgotten slot
-- or a hold that ends only lower the sums, so they need no lock.

CREATE TABLE slots (
    id           text PRIMARY KEY,
    owner        text NOT NULL,                -- bare JID
    domain       text NOT NULL,                -- its domain
    filename     text NOT NULL,
    size         bigint NOT NULL CHECK (size >= 0),
    content_type text NOT NULL,                -- as requested; '' if none
    purpose      text NOT NULL,
    issued       timestamptz NOT NULL,
    expires      timestamptz NOT NULL,         -- end of the PUT window
    delete_after timestamptz,                  -- NULL: never deleted
    complete     boolean NOT NULL DEFAULT false,
    stored       timestamptz,                  -- when the upload completed
    stored_type  text NOT NULL DEFAULT '',     -- content type served
    -- A pending slot holds its size against the quotas while uploading,
    -- or until hold_until (NULL: until it is completed or forgotten).
    hold_until   timestamptz,
    uploading    boolean NOT NULL DEFAULT false
);

-- the sweeper's listings
CREATE INDEX slots_pending ON slots (expires, id) WHERE NOT complete;
CREATE INDEX slots_expiry ON slots (delete_after, id) WHERE complete AND delete_after IS NOT NULL;
-- held sums of an owner and of a domain
CREATE INDEX slots_owner_pending ON slots (owner) WHERE NOT complete;
CREATE INDEX slots_domain_pending ON slots (domain) WHERE NOT complete;
-- when an owner's or a domain's stored files free enough
CREATE INDEX slots_owner_files ON slots (owner, delete_after) WHERE complete;
CREATE INDEX slots_domain_files ON slots (domain, delete_after) WHERE complete AND delete_after IS NOT NULL;

-- Bytes of complete files: 'u:' || owner, 'd:' || domain, 'g' (all).
-- Rows are changed by upserts in key order, so that transactions that
-- change several never deadlock.
CREATE TABLE slot_usage (
    key   text PRIMARY KEY,
    bytes bigint NOT NULL
);

-- Uploads of the last 24 hours by owner and minute (the minute after the
-- upload completed: slotstore.DailyStamp); an owner's older rows are
-- deleted when they upload again.
CREATE TABLE slot_daily (
    owner text NOT NULL,
    stamp timestamptz NOT NULL,
    bytes bigint NOT NULL,
    PRIMARY KEY (owner, stamp)
);

-- mediaslot_quota_check returns the first quota (0 daily, 1 user, 2
-- domain, 3 total; 0 limit: none) that extra more bytes of p_owner's do
-- not fit, with what is used, what pending slots hold and when enough is
-- freed; no row if they fit. The caller holds the quotas' locks.
CREATE FUNCTION mediaslot_quota_check(p_owner text, p_domain text, p_extra bigint,
        q_daily bigint, q_user bigint, q_domain bigint, q_total bigint, p_now timestamptz,
        OUT scope int, OUT lim bigint, OUT used bigint, OUT held bigint, OUT freed timestamptz)
    RETURNS SETOF record LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    s record;
    need numeric;
    max_held CONSTANT numeric := 9223372036854775807;
BEGIN
    -- one statement: one snapshot of usage and holds
    SELECT
        CASE WHEN q_daily > 0 THEN (SELECT coalesce(sum(d.bytes), 0) FROM slot_daily d
            WHERE d.owner = p_owner AND d.stamp >= p_now - interval '24 hours') ELSE 0 END AS daily_used,
        CASE WHEN q_user > 0 THEN (SELECT u.bytes FROM slot_usage u WHERE u.key = 'u:' || p_owner) ELSE 0 END AS user_used,
        CASE WHEN q_domain > 0 THEN (SELECT u.bytes FROM slot_usage u WHERE u.key = 'd:' || p_domain) ELSE 0 END AS domain_used,
        CASE WHEN q_total > 0 THEN (SELECT u.bytes FROM slot_usage u WHERE u.key = 'g') ELSE 0 END AS total_used,
        CASE WHEN q_daily > 0 OR q_user > 0 THEN (SELECT coalesce(sum(p.size::numeric), 0) FROM slots p
            WHERE NOT p.complete AND p.owner = p_owner AND (p.uploading OR p.hold_until IS NULL OR p.hold_until > p_now)) ELSE 0 END AS owner_held,
        CASE WHEN q_domain > 0 THEN (SELECT coalesce(sum(p.size::numeric), 0) FROM slots p
            WHERE NOT p.complete AND p.domain = p_domain AND (p.uploading OR p.hold_until IS NULL OR p.hold_until > p_now)) ELSE 0 END AS domain_held,
        CASE WHEN q_total > 0 THEN (SELECT coalesce(sum(p.size::numeric), 0) FROM slots p
            WHERE NOT p.complete AND (p.uploading OR p.hold_until IS NULL OR p.hold_until > p_now)) ELSE 0 END AS total_held
    INTO s;
    IF q_daily > 0 AND s.daily_used + s.owner_held + p_extra > q_daily THEN
        need := s.daily_used + s.owner_held + p_extra - q_daily;
        scope := 0; lim := q_daily; used := s.daily_used; held := least(s.owner_held, max_held);
        -- the oldest uploads leave the window first
        SELECT w.stamp + interval '24 hours' INTO freed FROM (
            SELECT d.stamp, sum(d.bytes) OVER (ORDER BY d.stamp) AS cum FROM slot_daily d
            WHERE d.owner = p_owner AND d.stamp >= p_now - interval '24 hours') w
        WHERE w.cum >= need ORDER BY w.stamp LIMIT 1;
        RETURN NEXT;
        RETURN;
    END IF;
    IF q_user > 0 AND coalesce(s.user_used, 0) + s.owner_held + p_extra > q_user THEN
        need := coalesce(s.user_used, 0) + s.owner_held + p_extra - q_user;
        scope := 1; lim := q_user; used := coalesce(s.user_used, 0); held := least(s.owner_held, max_held);
        -- the owner's files that expire first (those never deleted last),
        -- at most slotstore.FreedScan of them
        SELECT w.delete_after INTO freed FROM (
            SELECT f.delete_after, sum(f.size) OVER o AS cum, row_number() OVER o AS n FROM (
                SELECT f.delete_after, f.size, f.id FROM slots f WHERE f.complete AND f.owner = p_owner
                ORDER BY f.delete_after NULLS LAST, f.id LIMIT 10000) f
            WINDOW o AS (ORDER BY f.delete_after NULLS LAST, f.id)) w
        WHERE w.cum >= need ORDER BY w.n LIMIT 1;
        RETURN NEXT;
        RETURN;
    END IF;
    IF q_domain > 0 AND coalesce(s.domain_used, 0) + s.domain_held + p_extra > q_domain THEN
        need := coalesce(s.domain_used, 0) + s.domain_held + p_extra - q_domain;
        scope := 2; lim := q_domain; used := coalesce(s.domain_used, 0); held := least(s.domain_held, max_held);
        SELECT w.delete_after INTO freed FROM (
            SELECT f.delete_after, sum(f.size) OVER o AS cum, row_number() OVER o AS n FROM (
                SELECT f.delete_after, f.size, f.id FROM slots f
                WHERE f.complete AND f.domain = p_domain AND f.delete_after IS NOT NULL
                ORDER BY f.delete_after, f.id LIMIT 10000) f
            WINDOW o AS (ORDER BY f.delete_after, f.id)) w
        WHERE w.cum >= need ORDER BY w.n LIMIT 1;
        RETURN NEXT;
        RETURN;
    END IF;
    IF q_total > 0 AND coalesce(s.total_used, 0) + s.total_held + p_extra > q_total THEN
        need := coalesce(s.total_used, 0) + s.total_held + p_extra - q_total;
        scope := 3; lim := q_total; used := coalesce(s.total_used, 0); held := least(s.total_held, max_held);
        SELECT w.delete_after INTO freed FROM (
            SELECT f.delete_after, sum(f.size) OVER o AS cum, row_number() OVER o AS n FROM (
                SELECT f.delete_after, f.size, f.id FROM slots f
                WHERE f.complete AND f.delete_after IS NOT NULL
                ORDER BY f.delete_after, f.id LIMIT 10000) f
            WINDOW o AS (ORDER BY f.delete_after, f.id)) w
        WHERE w.cum >= need ORDER BY w.n LIMIT 1;
        RETURN NEXT;
        RETURN;
    END IF;
END $$;

-- mediaslot_quota_lock takes the advisory locks of the quotas that are
-- set, in a fixed order (owner, domain, service), until the transaction
-- ends.
CREATE FUNCTION mediaslot_quota_lock(p_owner text, p_domain text,
        q_daily bigint, q_user bigint, q_domain bigint, q_total bigint)
    RETURNS void LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    IF q_daily > 0 OR q_user > 0 THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('mediaslot quota u:' || p_owner, 0));
    END IF;
    IF q_domain > 0 THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('mediaslot quota d:' || p_domain, 0));
    END IF;
    IF q_total > 0 THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('mediaslot quota g', 0));
    END IF;
END $$;

-- mediaslot_issue_slot records a new pending slot if it fits the quotas;
-- otherwise it records nothing and returns the quota it does not fit.
CREATE FUNCTION mediaslot_issue_slot(p_id text, p_owner text, p_domain text, p_filename text, p_size bigint,
        p_content_type text, p_purpose text, p_issued timestamptz, p_expires timestamptz,
        p_delete_after timestamptz, p_hold_until timestamptz,
        q_daily bigint, q_user bigint, q_domain bigint, q_total bigint, p_now timestamptz,
        OUT scope int, OUT lim bigint, OUT used bigint, OUT held bigint, OUT freed timestamptz)
    RETURNS SETOF record LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    o record;
BEGIN
    PERFORM mediaslot_quota_lock(p_owner, p_domain, q_daily, q_user, q_domain, q_total);
    -- a new statement: its snapshot sees what the lock's last holder committed
    FOR o IN SELECT * FROM mediaslot_quota_check(p_owner, p_domain, p_size, q_daily, q_user, q_domain, q_total, p_now) LOOP
        scope := o.scope; lim := o.lim; used := o.used; held := o.held; freed := o.freed;
        RETURN NEXT;
        RETURN;
    END LOOP;
    INSERT INTO slots (id, owner, domain, filename, size, content_type, purpose, issued, expires, delete_after, hold_until)
    VALUES (p_id, p_owner, p_domain, p_filename, p_size, p_content_type, p_purpose, p_issued, p_expires, p_delete_after, p_hold_until);
END $$;

-- mediaslot_start_upload checks a pending slot against the quotas again,
-- counting its size once, and keeps its hold while it is uploaded; a slot
-- that no longer fits loses its hold. An unknown slot raises P0002.
CREATE FUNCTION mediaslot_start_upload(p_id text,
        q_daily bigint, q_user bigint, q_domain bigint, q_total bigint, p_now timestamptz,
        OUT scope int, OUT lim bigint, OUT used bigint, OUT held bigint, OUT freed timestamptz)
    RETURNS SETOF record LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    r slots;
    o record;
    extra bigint := 0;
BEGIN
    SELECT * INTO r FROM slots WHERE id = p_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such slot' USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT r.complete THEN
        PERFORM mediaslot_quota_lock(r.owner, r.domain, q_daily, q_user, q_domain, q_total);
        SELECT * INTO r FROM slots WHERE id = p_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no such slot' USING ERRCODE = 'no_data_found';
        END IF;
    END IF;
    IF r.complete THEN
        RETURN;
    END IF;
    IF NOT (r.uploading OR r.hold_until IS NULL OR r.hold_until > p_now) THEN
        extra := r.size; -- its hold has ended
    END IF;
    FOR o IN SELECT * FROM mediaslot_quota_check(r.owner, r.domain, extra, q_daily, q_user, q_domain, q_total, p_now) LOOP
        UPDATE slots SET hold_until = p_now, uploading = false WHERE id = p_id;
        scope := o.scope; lim := o.lim; used := o.used; held := o.held; freed := o.freed;
        RETURN NEXT;
        RETURN;
    END LOOP;
    UPDATE slots SET uploading = true WHERE id = p_id;
END $$;

-- mediaslot_complete_slot records a pending slot's upload as stored and
-- counts it: stored bytes of the owner, the domain and in all, and the
-- owner's uploads of p_stamp's minute. It returns the record and whether
-- it was complete already; no row for an unknown slot.
CREATE FUNCTION mediaslot_complete_slot(p_id text, p_now timestamptz, p_stamp timestamptz, p_type text,
        OUT was boolean, OUT owner text, OUT filename text, OUT size bigint, OUT content_type text,
        OUT purpose text, OUT issued timestamptz, OUT expires timestamptz, OUT delete_after timestamptz,
        OUT stored timestamptz, OUT stored_type text)
    RETURNS SETOF record LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    r slots;
BEGIN
    UPDATE slots s SET complete = true, stored = p_now, stored_type = p_type, uploading = false, hold_until = NULL
    WHERE s.id = p_id AND NOT s.complete RETURNING s.* INTO r;
    was := NOT FOUND;
    IF was THEN
        SELECT * INTO r FROM slots s WHERE s.id = p_id;
        IF NOT FOUND THEN
            RETURN;
        END IF;
    ELSE
        INSERT INTO slot_usage AS u (key, bytes)
        SELECT k, r.size FROM unnest(ARRAY['d:' || r.domain, 'g', 'u:' || r.owner]) AS k ORDER BY k
        ON CONFLICT (key) DO UPDATE SET bytes = u.bytes + EXCLUDED.bytes;
        DELETE FROM slot_daily d WHERE d.owner = r.owner AND d.stamp < p_now - interval '24 hours';
        INSERT INTO slot_daily AS d (owner, stamp, bytes) VALUES (r.owner, p_stamp, r.size)
        ON CONFLICT ON CONSTRAINT slot_daily_pkey DO UPDATE SET bytes = d.bytes + EXCLUDED.bytes;
    END IF;
    owner := r.owner; filename := r.filename; size := r.size; content_type := r.content_type;
    purpose := r.purpose; issued := r.issued; expires := r.expires; delete_after := r.delete_after;
    stored := r.stored; stored_type := r.stored_type;
    RETURN NEXT;
END $$;

-- mediaslot_expire_slots removes complete slots and uncounts their bytes
-- from the stored quotas, in one statement for the whole batch (their
-- usage rows exist: every complete file was counted).
CREATE FUNCTION mediaslot_expire_slots(p_ids text[]) RETURNS void LANGUAGE sql AS $$
    WITH gone AS (
        DELETE FROM slots WHERE id = ANY(p_ids) AND complete RETURNING owner, domain, size
    ), deltas AS (
        SELECT 'u:' || owner AS key, sum(size) AS n FROM gone GROUP BY owner
        UNION ALL SELECT 'd:' || domain, sum(size) FROM gone GROUP BY domain
        UNION ALL SELECT 'g', sum(size) FROM gone HAVING count(*) > 0
    )
    INSERT INTO slot_usage AS u (key, bytes)
    SELECT key, -n FROM deltas ORDER BY key
    ON CONFLICT (key) DO UPDATE SET bytes = greatest(0, u.bytes + EXCLUDED.bytes);
$$;
