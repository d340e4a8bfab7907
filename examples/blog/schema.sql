-- A blog in three tables. No foreign-key constraints: the example's changes
-- insert a comment before its post exists, as a CDC stream may deliver it.
DROP SCHEMA IF EXISTS blog CASCADE;
CREATE SCHEMA blog;

CREATE TABLE blog.authors (
    id       integer PRIMARY KEY,
    name     text NOT NULL,
    email    text,
    twitter  text
);

CREATE TABLE blog.posts (
    id         integer PRIMARY KEY,
    author_id  integer,
    title      text NOT NULL,
    body       text,
    published  boolean NOT NULL DEFAULT false,
    rating     numeric(3,1),
    posted_at  timestamptz
);

CREATE TABLE blog.comments (
    id          integer PRIMARY KEY,
    post_id     integer,
    who         text,
    text        text,
    created_at  timestamptz NOT NULL DEFAULT '2024-05-01 10:00:00+00',
    hidden      boolean NOT NULL DEFAULT false
);

INSERT INTO blog.authors VALUES
    (1, 'Ada', 'ada@example.com', '@ada'),
    (2, 'Brian', NULL, NULL);
INSERT INTO blog.posts VALUES
    (10, 1, 'Engines', 'On analytical engines.', true, 4.5, '2024-05-01 09:00:00+00'),
    (11, 2, 'C', 'A small language.', true, NULL, '2024-05-02 09:00:00+00'),
    (12, 1, 'Draft', NULL, false, NULL, NULL);
INSERT INTO blog.comments (id, post_id, who, text, created_at) VALUES
    (100, 10, 'grace', 'Lovely.', '2024-05-01 10:00:00+00'),
    (101, 10, 'alan', 'Computable?', '2024-05-01 11:00:00+00'),
    (102, 11, 'ken', 'Indeed.', '2024-05-02 10:00:00+00');
