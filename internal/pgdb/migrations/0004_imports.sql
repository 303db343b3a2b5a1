-- Moves of bbolt files into the database by `mediaslot migrate-data`
-- (cmd/mediaslot/migrate.go): one row per source file, whose progress is
-- committed with each batch it copies, so that an interrupted run resumes
-- where the last commit left off, and a finished one copies nothing again.
CREATE TABLE mediaslot_imports (
    source     text PRIMARY KEY,          -- the id migrate-data gave the bbolt file (stored in it)
    path       text NOT NULL,             -- where the file was, for the operator
    seq_offset bigint NOT NULL,           -- added to the file's relay stanza ids
    phase      integer NOT NULL DEFAULT 0,
    cursor     bytea NOT NULL DEFAULT '', -- the last key of the phase copied
    started    timestamptz NOT NULL DEFAULT now(),
    finished   timestamptz
);
