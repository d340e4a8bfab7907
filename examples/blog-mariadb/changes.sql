-- Changes made while smt runs (the server's time zone is UTC).
USE blog;
-- A comment on a post that does not exist yet, then the post.
INSERT INTO comments (id, post_id, who, text, created_at) VALUES (103, 13, 'edsger', 'First!', '2024-05-03 10:00:00');
INSERT INTO posts VALUES (13, 2, 'Unix', 'Pipes.', TRUE, 5.0, '2024-05-03 09:00:00');
-- An author's new email reaches every post of hers (merged into the posts).
UPDATE authors SET email = 'ada@lovelace.org' WHERE id = 1;
-- A comment hidden by moderation leaves its post; another moves to a different post.
UPDATE comments SET hidden = TRUE WHERE id = 101;
UPDATE comments SET post_id = 13 WHERE id = 102;
-- A post's key changes; its comment follows it.
UPDATE posts SET id = 14 WHERE id = 12;
INSERT INTO comments (id, post_id, who, text) VALUES (104, 14, 'barbara', 'Publish it!');
-- An author leaves before their posts.
DELETE FROM authors WHERE id = 2;
