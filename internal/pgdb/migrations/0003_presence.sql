-- Who is online (offline/pgqueue's offline.Presence), shared by the
-- instances of a cluster: ejabberd hands a user's presences to any of the
-- component's connections, so two of them may be recorded out of order;
-- each row keeps when its presence arrived, and an older one never
-- overwrites a newer. One row per resource (an unavailable one is kept a
-- minute, to win against an older available one recorded late), and one
-- per user known since the last reset (resource '').
CREATE TABLE relay_presence (
    bare      text    NOT NULL,
    resource  text    NOT NULL, -- the full JID; '' for the user's "known" row
    available boolean NOT NULL DEFAULT false,
    at        bigint  NOT NULL DEFAULT 0, -- Unix nanoseconds the presence arrived
    PRIMARY KEY (bare, resource)
);

-- What the server granted the relay (XEP-0356), recorded by the instance
-- that got the advertisement: ejabberd hands it to any one connection.
CREATE TABLE relay_grant (
    id    boolean PRIMARY KEY DEFAULT true CHECK (id),
    grant_ bytea NOT NULL
);
