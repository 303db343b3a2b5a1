-- Who is online (offline/pgqueue's offline.Presence), shared by the
-- instances of a cluster: ejabberd hands a user's presences to any of the
-- component's connections. One row per available resource, and one per
-- user known since the last reset (resource ''), so rows do not pile up
-- with every resource a client made up and left.
CREATE TABLE relay_presence (
    bare      text    NOT NULL,
    resource  text    NOT NULL, -- the full JID; '' for the user's "known" row
    PRIMARY KEY (bare, resource)
);
