-- The blog of examples/blog in MariaDB: database `blog`, the same three
-- tables. BOOLEAN is TINYINT(1) here (Debezium sends 0/1): the mapping makes
-- `published` a boolean and filters `hidden` on 0. No foreign keys: the
-- changes insert a comment before its post, as a CDC stream may deliver it.
DROP DATABASE IF EXISTS blog;
CREATE DATABASE blog;
USE blog;

CREATE TABLE authors (
    id       INT PRIMARY KEY,
    name     VARCHAR(100) NOT NULL,
    email    VARCHAR(200),
    twitter  VARCHAR(50)
);

CREATE TABLE posts (
    id         INT PRIMARY KEY,
    author_id  INT,
    title      VARCHAR(200) NOT NULL,
    body       TEXT,
    published  BOOLEAN NOT NULL DEFAULT FALSE,
    rating     DECIMAL(3,1),
    posted_at  TIMESTAMP NULL
);

CREATE TABLE comments (
    id          INT PRIMARY KEY,
    post_id     INT,
    who         VARCHAR(50),
    text        TEXT,
    created_at  DATETIME(3) NOT NULL DEFAULT '2024-05-01 10:00:00',
    hidden      BOOLEAN NOT NULL DEFAULT FALSE
);

INSERT INTO authors VALUES
    (1, 'Ada', 'ada@example.com', '@ada'),
    (2, 'Brian', NULL, NULL);
INSERT INTO posts VALUES
    (10, 1, 'Engines', 'On analytical engines.', TRUE, 4.5, '2024-05-01 09:00:00'),
    (11, 2, 'C', 'A small language.', TRUE, NULL, '2024-05-02 09:00:00'),
    (12, 1, 'Draft', NULL, FALSE, NULL, NULL);
INSERT INTO comments (id, post_id, who, text, created_at) VALUES
    (100, 10, 'grace', 'Lovely.', '2024-05-01 10:00:00'),
    (101, 10, 'alan', 'Computable?', '2024-05-01 11:00:00'),
    (102, 11, 'ken', 'Indeed.', '2024-05-02 10:00:00.250');
