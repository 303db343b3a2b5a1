-- The relay queue (offline/pgqueue): what offline.BoltQueue keeps in the
-- bbolt file, with the same counters, so every cap is one row lookup.
--
-- Every writing transaction locks the one row of relay_state first, so
-- writers (of all instances) take turns: the caps read exact counters, and
-- Seq, handed out from last_seq under that lock, grows in commit order. A
-- Drain can then never pass an entry that commits later with a lower Seq.
-- Enqueues share these transactions by group commit.

CREATE TABLE relay_state (
    id             boolean PRIMARY KEY DEFAULT true CHECK (id),
    last_seq       bigint NOT NULL DEFAULT 0, -- the last stanza id (Entry.Seq) issued
    entries        bigint NOT NULL DEFAULT 0, -- one per recipient of each stanza
    stanzas        bigint NOT NULL DEFAULT 0,
    bytes          bigint NOT NULL DEFAULT 0, -- of stanzas, each counted once
    recipients     bigint NOT NULL DEFAULT 0, -- with at least one entry
    unseen_entries bigint NOT NULL DEFAULT 0, -- of recipients never seen
    unseen_bytes   bigint NOT NULL DEFAULT 0
);
INSERT INTO relay_state DEFAULT VALUES;

-- A stanza is stored once for all its recipients (holders).
CREATE TABLE relay_stanzas (
    id       bigint  PRIMARY KEY,
    sender   text    NOT NULL,
    account  text    NOT NULL, -- the sender's, whose caps it counts against
    accepted bigint  NOT NULL, -- Unix nanoseconds, as Entry.Accepted
    size     bigint  NOT NULL, -- octet_length(stanza)
    holders  integer NOT NULL, -- entries left; the last one deletes the stanza
    stanza   bytea   NOT NULL
);
CREATE INDEX relay_stanzas_accepted ON relay_stanzas (accepted, id);

-- One recipient's entries, in Seq order: a Drain is an index range scan.
CREATE TABLE relay_entries (
    recipient text    NOT NULL,
    seq       bigint  NOT NULL,
    accepted  bigint  NOT NULL,
    unseen    boolean NOT NULL, -- the recipient was never seen (Purge after the unseen TTL)
    PRIMARY KEY (recipient, seq)
);
CREATE INDEX relay_entries_seq ON relay_entries (seq);
CREATE INDEX relay_entries_unseen ON relay_entries (accepted, seq) WHERE unseen;

-- Per recipient: what they hold, and whether they were ever seen. Rows of
-- recipients never seen go with their last entry.
CREATE TABLE relay_recipients (
    recipient text   PRIMARY KEY,
    seen      bigint, -- Unix nanoseconds of MarkSeen; NULL: never seen
    entries   bigint NOT NULL DEFAULT 0,
    bytes     bigint NOT NULL DEFAULT 0
);

-- Per sender's account: all it has queued (bytes of each stanza once), and
-- what it has queued for recipients never seen. Absent when nothing.
CREATE TABLE relay_senders (
    account        text   PRIMARY KEY,
    entries        bigint NOT NULL,
    bytes          bigint NOT NULL,
    unseen_entries bigint NOT NULL,
    unseen_bytes   bigint NOT NULL
);

-- Per recipient and sender's account: the sender's share of the queue.
CREATE TABLE relay_shares (
    recipient text   NOT NULL,
    account   text   NOT NULL,
    entries   bigint NOT NULL,
    bytes     bigint NOT NULL,
    PRIMARY KEY (recipient, account)
);
